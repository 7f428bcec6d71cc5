// The new-run form, built from GET /api/catalog: a new plugin appears here with no change.

import { api, ApiError } from "../api.js";
import { el } from "../dom.js";

const get = (obj, path) => path.split(".").reduce((o, k) => (o == null ? undefined : o[k]), obj);
function set(obj, path, value) {
  const keys = path.split(".");
  let o = obj;
  for (const k of keys.slice(0, -1)) o = o[k] ??= {};
  o[keys.at(-1)] = value;
}

// A field: its label, its input, its error slot; `read()` gives the JSON value.
function field(path, label, input, { hint, read } = {}) {
  input.id = `f-${path}`;
  input.name = path;
  const error = el("div", { class: "field-error", id: `e-${path}`, role: "alert" });
  const node = el("div", { class: "field" }, el("label", { for: input.id, text: label }), input, hint ? el("small", { text: hint }) : null, error);
  return { path, node, input, error, read: read || (() => input.value) };
}

function numberField(path, label, value, { step = "any", optional = false, integer = false, hint } = {}) {
  const input = el("input", { type: "number", step: integer ? "1" : step, value: value ?? "" });
  return field(path, label, input, {
    hint,
    read: () => (input.value === "" ? (optional ? null : undefined) : Number(input.value)),
  });
}

function selectField(path, label, options, value) {
  const input = el("select", {}, options.map((o) => el("option", { value: o.value ?? o, text: o.label ?? o })));
  input.value = value;
  return field(path, label, input);
}

function checkField(path, label, value) {
  const input = el("input", { type: "checkbox", checked: !!value });
  return field(path, label, input, { read: () => input.checked });
}

function textField(path, label, value, { read, hint } = {}) {
  const input = el("input", { type: "text", value: value ?? "" });
  return field(path, label, input, { read: read ? () => read(input.value) : undefined, hint });
}

const listOf = (convert) => (text) => text.split(",").map((s) => s.trim()).filter(Boolean).map(convert);

// Fields for a plugin's options, from its JSON Schema.
function schemaFields(prefix, schema, values) {
  const fields = [];
  for (const [name, prop] of Object.entries(schema.properties || {})) {
    const path = `${prefix}.${name}`;
    const value = values?.[name] ?? prop.default;
    const types = prop.anyOf ? prop.anyOf.map((t) => t.type) : [prop.type];
    const label = `${prop.title || name}`;
    if (prop.enum) fields.push(selectField(path, label, prop.enum, value));
    else if (types.includes("boolean")) fields.push(checkField(path, label, value));
    else if (types.includes("integer") || types.includes("number")) fields.push(numberField(path, label, value, { integer: types.includes("integer") && !types.includes("number"), optional: types.includes("null"), hint: prop.description }));
    else if (types.includes("array")) {
      const itemType = (prop.items || {}).type;
      fields.push(textField(path, `${label} (comma separated)`, (value || []).join(", "), { read: listOf(itemType === "string" ? String : Number) }));
    } else fields.push(textField(path, label, value));
  }
  return fields;
}

export async function formView(container, params) {
  const catalog = await api.catalog();
  let base = catalog.defaults;
  const cloneId = params.get("clone");
  if (cloneId) {
    const source = await api.run(cloneId);
    base = { ...base, ...source.spec, name: `${source.name} (clone)` };
  }
  const byName = (list, name) => list.find((p) => p.name === name);
  const names = (list) => list.map((p) => ({ value: p.name, label: `${p.name} — ${p.description}` }));

  const dataset = selectField("dataset.name", "Dataset", names(catalog.datasets), base.dataset.name);
  const model = selectField("model.name", "Model", names(catalog.models), base.model.name);
  const optimizer = selectField("optimizer.name", "Optimizer", names(catalog.optimizers), base.optimizer.name);
  const scheduler = selectField("scheduler.name", "Scheduler", names(catalog.schedulers), base.scheduler.name);
  const pluginBoxes = { dataset: el("div", { class: "subfields" }), model: el("div", { class: "subfields" }), optimizer: el("div", { class: "subfields" }), scheduler: el("div", { class: "subfields" }) };
  const pluginFields = { dataset: [], model: [], optimizer: [], scheduler: [] };
  const lists = { dataset: catalog.datasets, model: catalog.models, optimizer: catalog.optimizers, scheduler: catalog.schedulers };
  const selects = { dataset, model, optimizer, scheduler };
  function rebuild(kind, values) {
    const plugin = byName(lists[kind], selects[kind].input.value);
    pluginFields[kind] = plugin ? schemaFields(`${kind}.params`, plugin.params, values) : [];
    pluginBoxes[kind].replaceChildren(...pluginFields[kind].map((f) => f.node));
  }
  for (const kind of Object.keys(selects)) {
    rebuild(kind, get(base, `${kind}.params`));
    selects[kind].input.addEventListener("change", () => rebuild(kind, {}));
  }

  const earlyBase = base.early_stopping || { patience: 3, min_delta: 0, monitor: "val_loss", mode: "min" };
  const fixed = [
    textField("name", "Name", base.name),
    textField("tags", "Tags (comma separated)", (base.tags || []).join(", "), { read: listOf(String) }),
    numberField("optimizer.lr", "Learning rate", base.optimizer.lr),
    numberField("optimizer.weight_decay", "Weight decay", base.optimizer.weight_decay),
    checkField("optimizer.no_decay_bias_norm", "No weight decay on biases and norms", base.optimizer.no_decay_bias_norm),
    numberField("scheduler.warmup_epochs", "Warmup epochs", base.scheduler.warmup_epochs, { integer: true }),
    numberField("epochs", "Epochs", base.epochs, { integer: true }),
    numberField("batch_size", "Batch size", base.batch_size, { integer: true }),
    numberField("grad_clip_norm", "Gradient clipping", base.grad_clip_norm, { optional: true, hint: "max gradient norm; empty for none" }),
    selectField("amp", "Mixed precision", ["off", "auto", "bf16", "fp16"], base.amp),
    numberField("seed", "Seed", base.seed, { integer: true }),
    checkField("deterministic", "Deterministic", base.deterministic),
    numberField("dataset.val_fraction", "Validation fraction", base.dataset.val_fraction),
    numberField("checkpoint.every_epochs", "Checkpoint every (epochs)", base.checkpoint.every_epochs, { integer: true }),
    numberField("checkpoint.keep_last", "Keep last checkpoints", base.checkpoint.keep_last, { integer: true }),
    numberField("checkpoint.keep_best", "Keep best checkpoints", base.checkpoint.keep_best, { integer: true }),
    checkField("early_stopping.enabled", "Early stopping", !!base.early_stopping),
    numberField("early_stopping.patience", "Patience (epochs)", earlyBase.patience, { integer: true }),
    numberField("early_stopping.min_delta", "Min improvement", earlyBase.min_delta),
  ];
  const notes = el("textarea", { rows: 2 });
  notes.value = base.notes || "";
  fixed.push(field("notes", "Notes", notes));
  const f = Object.fromEntries(fixed.map((x) => [x.path, x]));

  // CSV upload beside the data set choice.
  const csvFile = el("input", { type: "file", accept: ".csv,text/csv", id: "csv-file", "aria-label": "CSV file" });
  const csvTarget = el("input", { type: "text", id: "csv-target", placeholder: "target column", "aria-label": "Target column" });
  const csvStatus = el("div", { class: "field-error", id: "csv-status", role: "status" });
  const csvButton = el("button", { type: "button", text: "Upload CSV", onclick: async () => {
    const form = new FormData();
    if (!csvFile.files[0]) { csvStatus.textContent = "choose a CSV file first"; return; }
    form.append("file", csvFile.files[0]);
    form.append("target", csvTarget.value);
    try {
      const made = await api.uploadDataset(form);
      dataset.input.append(el("option", { value: made.name, text: `${made.name} — uploaded CSV` }));
      dataset.input.value = made.name;
      rebuild("dataset", {});
      csvStatus.textContent = `uploaded ${made.name}: ${made.rows} rows, ${made.task}`;
    } catch (error) {
      csvStatus.textContent = describe(error);
    }
  } });

  const formError = el("div", { class: "form-error", role: "alert", id: "form-error" });
  const submit = el("button", { type: "submit", class: "primary", text: "Start run" });
  const form = el("form", { id: "run-form", novalidate: true },
    el("div", { class: "grid" },
      el("fieldset", {}, el("legend", { text: "Data" }), dataset.node, el("div", { class: "upload" }, csvFile, csvTarget, csvButton, csvStatus), pluginBoxes.dataset, f["dataset.val_fraction"].node),
      el("fieldset", {}, el("legend", { text: "Model" }), model.node, pluginBoxes.model),
      el("fieldset", {}, el("legend", { text: "Optimization" }), optimizer.node, f["optimizer.lr"].node, f["optimizer.weight_decay"].node, f["optimizer.no_decay_bias_norm"].node, pluginBoxes.optimizer, scheduler.node, f["scheduler.warmup_epochs"].node, pluginBoxes.scheduler),
      el("fieldset", {}, el("legend", { text: "Training" }), ...["epochs", "batch_size", "grad_clip_norm", "amp", "seed", "deterministic"].map((p) => f[p].node)),
      el("fieldset", {}, el("legend", { text: "Checkpoints and stopping" }), ...["checkpoint.every_epochs", "checkpoint.keep_last", "checkpoint.keep_best", "early_stopping.enabled", "early_stopping.patience", "early_stopping.min_delta"].map((p) => f[p].node)),
      el("fieldset", {}, el("legend", { text: "About" }), f.name.node, f.tags.node, f.notes.node)),
    formError, submit);
  container.replaceChildren(el("section", { class: "card" }, el("h1", { text: cloneId ? `Clone of run ${cloneId}` : "New run" }), form));

  function allFields() {
    return [dataset, model, optimizer, scheduler, ...fixed, ...Object.values(pluginFields).flat()];
  }
  function buildSpec() {
    const spec = { dataset: { params: {} }, model: { params: {} }, optimizer: { params: {}, param_groups: base.optimizer.param_groups || [] }, scheduler: { params: {} }, checkpoint: { ...base.checkpoint } };
    for (const x of allFields()) {
      if (x.path.startsWith("early_stopping.")) continue;
      const value = x.read();
      if (value !== undefined) set(spec, x.path, value);
    }
    spec.early_stopping = f["early_stopping.enabled"].read() ? { ...earlyBase, patience: f["early_stopping.patience"].read(), min_delta: f["early_stopping.min_delta"].read() } : null;
    return spec;
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    for (const x of allFields()) x.error.textContent = "";
    formError.textContent = "";
    submit.disabled = true;
    try {
      const run = await api.createRun(buildSpec());
      location.hash = `#/run/${run.id}`;
    } catch (error) {
      showFieldErrors(error, allFields(), formError);
    } finally {
      submit.disabled = false;
    }
  });
}

function describe(error) {
  if (error instanceof ApiError && Array.isArray(error.detail)) return error.detail.map((d) => d.msg).join("; ");
  return error.message;
}

// Put each validation error next to the field its `loc` names (the deepest matching path).
function showFieldErrors(error, fields, formError) {
  if (!(error instanceof ApiError) || !Array.isArray(error.detail)) {
    formError.textContent = describe(error);
    return;
  }
  const byPath = new Map(fields.map((x) => [x.path, x]));
  for (const item of error.detail) {
    const loc = item.loc.filter((p) => p !== "body" && typeof p === "string" && !["job", "external"].includes(p));
    let target = null;
    for (let n = loc.length; n > 0 && !target; n--) target = byPath.get(loc.slice(0, n).join("."));
    const message = `${item.msg}`;
    if (target) target.error.textContent = message;
    else formError.textContent = `${loc.join(".")}: ${message}`;
  }
}
