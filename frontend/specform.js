// A RunSpec's fields, built from GET /api/catalog (a new plugin appears with no change here) and
// filled from a base spec: the run form's boxes, which the sweep form reuses for its base spec.

import { api } from "./api.js";
import { el } from "./dom.js";
import {
  checkField,
  describe,
  field,
  listOf,
  numberField,
  schemaFields,
  selectField,
  textField,
} from "./fields.js";

const PLUGIN_KINDS = {
  dataset: "datasets",
  model: "models",
  optimizer: "optimizers",
  scheduler: "schedulers",
};
const EARLY_STOPPING = { patience: 3, min_delta: 0, monitor: "val_loss", mode: "min" };
// The form's boxes and what each holds: field paths, a plugin's options ("<kind>.params"), or
// the CSV upload.
const FIELDSETS = [
  ["Data", ["dataset.name", "upload", "dataset.params", "dataset.val_fraction"]],
  ["Model", ["model.name", "model.params"]],
  [
    "Optimization",
    [
      "optimizer.name",
      "optimizer.lr",
      "optimizer.weight_decay",
      "optimizer.no_decay_bias_norm",
      "optimizer.params",
      "scheduler.name",
      "scheduler.warmup_epochs",
      "scheduler.params",
    ],
  ],
  [
    "Training",
    ["epochs", "batch_size", "devices", "grad_clip_norm", "amp", "seed", "deterministic"],
  ],
  [
    "Checkpoints and stopping",
    [
      "checkpoint.every_epochs",
      "checkpoint.keep_last",
      "checkpoint.keep_best",
      "early_stopping.enabled",
      "early_stopping.patience",
      "early_stopping.min_delta",
    ],
  ],
  ["About", ["name", "tags", "notes"]],
];

const get = (obj, path) => path.split(".").reduce((o, k) => (o == null ? undefined : o[k]), obj);
function setPath(obj, path, value) {
  const keys = path.split(".");
  let o = obj;
  for (const k of keys.slice(0, -1)) o = o[k] ??= {};
  o[keys.at(-1)] = value;
}

// The fields whose set is fixed (plugin choices and their options aside), filled from `base`.
function fixedFields(base, early) {
  const integer = { integer: true };
  const notes = el("textarea", { rows: 2 });
  notes.value = base.notes || "";
  const tags = (base.tags || []).join(", ");
  return [
    textField("name", "Name", base.name),
    textField("tags", "Tags (comma separated)", tags, { read: listOf(String) }),
    field("notes", "Notes", notes),
    numberField("optimizer.lr", "Learning rate", base.optimizer.lr),
    numberField("optimizer.weight_decay", "Weight decay", base.optimizer.weight_decay),
    checkField(
      "optimizer.no_decay_bias_norm",
      "No weight decay on biases and norms",
      base.optimizer.no_decay_bias_norm,
    ),
    numberField("scheduler.warmup_epochs", "Warmup epochs", base.scheduler.warmup_epochs, integer),
    numberField("epochs", "Epochs", base.epochs, integer),
    numberField("batch_size", "Batch size", base.batch_size, integer),
    numberField("devices", "Devices", base.devices ?? 1, {
      integer: true,
      hint: "processes on one worker machine, one per GPU or CPU core (torch.distributed)",
    }),
    numberField("grad_clip_norm", "Gradient clipping", base.grad_clip_norm, {
      optional: true,
      hint: "max gradient norm; empty for none",
    }),
    selectField("amp", "Mixed precision", ["off", "auto", "bf16", "fp16"], base.amp),
    numberField("seed", "Seed", base.seed, integer),
    checkField("deterministic", "Deterministic", base.deterministic),
    numberField("dataset.val_fraction", "Validation fraction", base.dataset.val_fraction),
    numberField(
      "checkpoint.every_epochs",
      "Checkpoint every (epochs)",
      base.checkpoint.every_epochs,
      integer,
    ),
    numberField(
      "checkpoint.keep_last",
      "Keep last checkpoints",
      base.checkpoint.keep_last,
      integer,
    ),
    numberField(
      "checkpoint.keep_best",
      "Keep best checkpoints",
      base.checkpoint.keep_best,
      integer,
    ),
    checkField("early_stopping.enabled", "Early stopping", !!base.early_stopping),
    numberField("early_stopping.patience", "Patience (epochs)", early.patience, integer),
    numberField("early_stopping.min_delta", "Min improvement", early.min_delta),
  ];
}

// A plugin choice: its select, and a box of its options rebuilt when the choice changes.
function pluginChoice(kind, plugins, base) {
  const label = kind[0].toUpperCase() + kind.slice(1);
  const options = plugins.map((p) => ({ value: p.name, label: `${p.name} — ${p.description}` }));
  const choice = {
    kind,
    plugins,
    select: selectField(`${kind}.name`, label, options, base[kind].name),
    box: el("div", { class: "subfields" }),
    fields: [],
    rebuild(values) {
      const plugin = choice.plugins.find((p) => p.name === choice.select.input.value);
      choice.fields = plugin ? schemaFields(`${kind}.params`, plugin.params, values) : [];
      choice.box.replaceChildren(...choice.fields.map((f) => f.node));
    },
  };
  choice.rebuild(get(base, `${kind}.params`));
  choice.select.input.addEventListener("change", () => choice.rebuild({}));
  return choice;
}

// Upload a CSV as a new data set, then choose it.
function csvUpload(datasetChoice) {
  const file = el("input", {
    type: "file",
    accept: ".csv,text/csv",
    id: "csv-file",
    "aria-label": "CSV file",
  });
  const target = el("input", {
    type: "text",
    id: "csv-target",
    placeholder: "target column",
    "aria-label": "Target column",
  });
  const status = el("div", { class: "field-error", id: "csv-status", role: "status" });
  async function upload() {
    if (!file.files[0]) {
      status.textContent = "choose a CSV file first";
      return;
    }
    const form = new FormData();
    form.append("file", file.files[0]);
    form.append("target", target.value);
    try {
      const made = await api.uploadDataset(form);
      const select = datasetChoice.select.input;
      select.append(el("option", { value: made.name, text: `${made.name} — uploaded CSV` }));
      select.value = made.name;
      datasetChoice.rebuild({});
      status.textContent = `uploaded ${made.name}: ${made.rows} rows, ${made.task}`;
    } catch (error) {
      status.textContent = describe(error);
    }
  }
  const button = el("button", { type: "button", text: "Upload CSV", onclick: upload });
  return el("div", { class: "upload" }, file, target, button, status);
}

// The spec's fields in their boxes, filled from `base` (a whole RunSpec: the catalog's defaults,
// or a run's spec over them). `legends`: which boxes of FIELDSETS to show (all by default).
// Returns the boxes, the fields by path (`byPath`), `all()` (every field shown now, plugin
// options included) and `read()`, the spec the fields hold.
export function specFields(catalog, base, { legends } = {}) {
  const early = base.early_stopping || EARLY_STOPPING;
  const choices = Object.entries(PLUGIN_KINDS).map(([kind, list]) =>
    pluginChoice(kind, catalog[list], base),
  );
  const shown = FIELDSETS.filter(([legend]) => !legends || legends.includes(legend));
  const shownPaths = new Set(shown.flatMap(([, names]) => names));
  const fixed = fixedFields(base, early).filter((x) => shownPaths.has(x.path));
  const byPath = Object.fromEntries(fixed.map((x) => [x.path, x]));
  const parts = Object.fromEntries(fixed.map((x) => [x.path, x.node]));
  for (const c of choices) {
    parts[`${c.kind}.name`] = c.select.node;
    parts[`${c.kind}.params`] = c.box;
  }
  parts.upload = csvUpload(choices[0]);
  const fieldsets = shown.map(([legend, names]) =>
    el("fieldset", {}, el("legend", { text: legend }), ...names.map((key) => parts[key])),
  );

  function all() {
    return [...choices.map((c) => c.select), ...fixed, ...choices.flatMap((c) => c.fields)];
  }
  // Only what the fields hold: what the form does not show takes the server's defaults.
  function read() {
    const spec = {
      dataset: { params: {} },
      model: { params: {} },
      optimizer: { params: {}, param_groups: base.optimizer.param_groups || [] },
      scheduler: { params: {} },
      checkpoint: { ...base.checkpoint },
    };
    for (const x of all()) {
      if (x.path.startsWith("early_stopping.")) continue;
      const value = x.read();
      if (value !== undefined) setPath(spec, x.path, value);
    }
    if (byPath["early_stopping.enabled"]) {
      spec.early_stopping = byPath["early_stopping.enabled"].read()
        ? {
            ...early,
            patience: byPath["early_stopping.patience"].read(),
            min_delta: byPath["early_stopping.min_delta"].read(),
          }
        : null;
    }
    return spec;
  }
  return { fieldsets, byPath, all, read };
}
