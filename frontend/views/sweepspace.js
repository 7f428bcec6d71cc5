// The sweep form's search space: a row per dimension (a spec path; low, high, step and log for a
// number; the choices for a plugin name, from the catalog), rows added and removed, and the
// one-click preset that compares optimizers with and without a cosine schedule.

import { el } from "../dom.js";

// The numbers of every spec worth searching, with a starting range.
const NUMBERS = [
  { path: "optimizer.lr", type: "float", low: 1e-4, high: 1e-1, log: true },
  { path: "optimizer.weight_decay", type: "float", low: 1e-5, high: 1e-1, log: true },
  { path: "batch_size", type: "int", low: 16, high: 128, step: 16 },
  { path: "epochs", type: "int", low: 2, high: 10, step: 1 },
  { path: "scheduler.warmup_epochs", type: "int", low: 0, high: 3, step: 1 },
];
// Plugin names chosen among the catalog's.
const CHOICES = [
  { path: "optimizer.name", list: "optimizers" },
  { path: "scheduler.name", list: "schedulers" },
];
export const PRESET = {
  label: "SGD+momentum vs Adam vs AdamW (± cosine)",
  dimensions: [
    { path: "optimizer.name", choices: ["sgd", "adam", "adamw"] },
    { path: "scheduler.name", choices: ["none", "cosine"] },
  ],
  n_trials: 6,
};

// A model's numeric options (their JSON Schema) as dimensions, e.g. model.params.dropout.
function modelNumbers(model) {
  const out = [];
  for (const [name, prop] of Object.entries(model?.params?.properties || {})) {
    const path = `model.params.${name}`;
    if (prop.type === "number") {
      const low = prop.minimum ?? prop.exclusiveMinimum ?? 0;
      const high = prop.maximum ?? (prop.exclusiveMaximum ?? 2 * (prop.default || 1)) / 2;
      out.push({ path, type: "float", low, high, log: false });
    } else if (prop.type === "integer") {
      const low = Math.max(prop.minimum ?? 1, 1);
      out.push({
        path,
        type: "int",
        low,
        high: Math.max(2 * (prop.default ?? 1), low + 1),
        step: 1,
      });
    }
  }
  return out;
}

// What a row may search: `catalog` gives the choices, `modelName` the model's own options.
export function dimensionOptions(catalog, modelName) {
  const model = catalog.models.find((m) => m.name === modelName);
  const choices = CHOICES.map((c) => ({
    path: c.path,
    type: "categorical",
    options: catalog[c.list].map((p) => p.name),
  }));
  return [...NUMBERS, ...modelNumbers(model), ...choices];
}

const numberInput = (label, value, attrs = {}) =>
  el("input", { type: "number", step: "any", value: value ?? "", "aria-label": label, ...attrs });
const labelled = (text, input) => el("label", { class: "inline" }, `${text} `, input);

// One dimension's row; `start`: {path, ...} to begin with (a path from `options`).
// Returns the row's node, `path()`, `read()` (the dimension as the API takes it, or a message
// saying what is missing), its error slot and `remove`'s hook.
function dimensionRow(options, start, onRemove) {
  const select = el(
    "select",
    { "aria-label": "Parameter", class: "dimension-path" },
    options.map((o) => el("option", { value: o.path, text: o.path })),
  );
  select.value = start.path;
  const body = el("div", { class: "dimension-body" });
  const error = el("div", { class: "field-error", role: "alert" });
  const remove = el("button", { type: "button", text: "Remove", "aria-label": "Remove parameter" });
  const node = el("div", { class: "dimension" }, select, body, remove, error);
  let read = () => null;

  function build(dimension, values = {}) {
    node.dataset.path = dimension.path;
    error.id = `e-space.${dimension.path}`;
    error.textContent = "";
    if (dimension.type === "categorical") {
      const chosen = new Set((values.choices ?? dimension.options).map(String));
      const boxes = dimension.options.map((name) =>
        el("input", { type: "checkbox", value: name, checked: chosen.has(name) }),
      );
      body.replaceChildren(
        el("span", { class: "muted", text: "choices (each with its catalog defaults)" }),
        boxes.map((box) => el("label", { class: "inline" }, box, ` ${box.value}`)),
      );
      read = () => {
        const picked = boxes.filter((b) => b.checked).map((b) => b.value);
        return picked.length ? { type: "categorical", choices: picked } : "choose at least one";
      };
      return;
    }
    const low = numberInput("Low", values.low ?? dimension.low);
    const high = numberInput("High", values.high ?? dimension.high);
    const step = numberInput("Step", values.step ?? dimension.step, { min: 0 });
    const log = el("input", {
      type: "checkbox",
      checked: values.log ?? !!dimension.log,
      "aria-label": "Log scale",
    });
    body.replaceChildren(
      el("span", { class: "muted", text: dimension.type }),
      labelled("low", low),
      labelled("high", high),
      labelled("step", step),
      el("label", { class: "inline" }, log, " log"),
    );
    read = () => {
      if (low.value === "" || high.value === "") return "give a low and a high value";
      const out = { type: dimension.type, low: Number(low.value), high: Number(high.value) };
      if (step.value !== "") out.step = Number(step.value);
      out.log = log.checked;
      return out;
    };
  }
  const find = (path) => options.find((o) => o.path === path);
  select.addEventListener("change", () => build(find(select.value)));
  remove.addEventListener("click", onRemove);
  build(find(start.path), start);
  return {
    node,
    error,
    path: () => select.value,
    read: () => read(),
  };
}

// The rows, an "Add parameter" button and the space's own error slot (path "space").
export function searchSpace(options) {
  const list = el("div", { class: "dimensions", id: "dimensions" });
  const error = el("div", { class: "field-error", id: "e-space", role: "alert" });
  let rows = [];
  function add(start) {
    const unused = options.find((o) => !rows.some((r) => r.path() === o.path)) || options[0];
    const row = dimensionRow(options, start || unused, () => {
      rows = rows.filter((r) => r !== row);
      row.node.remove();
    });
    rows.push(row);
    list.append(row.node);
    return row;
  }
  function reset(dimensions) {
    rows = [];
    list.replaceChildren();
    for (const d of dimensions) add(d);
  }
  const addButton = el("button", {
    type: "button",
    id: "add-dimension",
    text: "Add parameter",
    onclick: () => add(),
  });
  const node = el(
    "fieldset",
    { class: "search-space" },
    el("legend", { text: "Search space" }),
    list,
    addButton,
    error,
  );
  // The space as the API takes it; a row's own problem goes to its error slot, and makes it null.
  function read() {
    const space = {};
    let ok = true;
    for (const row of rows) {
      const value = row.read();
      row.error.textContent = "";
      if (typeof value === "string" || Object.hasOwn(space, row.path())) {
        row.error.textContent = typeof value === "string" ? value : "already in the space";
        ok = false;
      } else space[row.path()] = value;
    }
    return ok ? space : null;
  }
  // The slots showFieldErrors puts the server's errors in: a row's path is "space.<its path>".
  function errorSlots() {
    return [
      { path: "space", error },
      ...rows.map((r) => ({ path: `space.${r.path()}`, error: r.error })),
    ];
  }
  return { node, add, reset, read, errorSlots };
}
