// The new-sweep form: the base spec's fields (the run form's, from the catalog), the search
// space, and how to search (trials, parallelism, sampler, pruner, objective). `?from=<run id>`
// starts from that run's spec ("Sweep this" on a run's page). The server's errors go next to
// their field: a base field's, a dimension's or the sweep's own.

import { api } from "../api.js";
import { el } from "../dom.js";
import { numberField, selectField, showFieldErrors, textField } from "../fields.js";
import { specFields } from "../specform.js";
import { dimensionOptions, PRESET, searchSpace } from "./sweepspace.js";

const SAMPLERS = [
  { value: "tpe", label: "TPE: learns from the trials so far" },
  { value: "random", label: "random" },
  { value: "grid", label: "grid: every combination (a float needs a step)" },
];
const PRUNERS = [
  { value: "median", label: "median: stop a trial worse than the median at its epoch" },
  { value: "none", label: "none: every trial runs to its end" },
];
const METRICS = ["val_loss", "val_accuracy", "train_loss", "train_accuracy"];
const MODES = [
  { value: "min", label: "minimize" },
  { value: "max", label: "maximize" },
];

// How to search: the sweep's own fields.
function searchFields(name) {
  const integer = { integer: true };
  return [
    textField("name", "Sweep name", name),
    numberField("n_trials", "Number of trials", 20, integer),
    numberField("parallelism", "Trials at a time", 2, integer),
    selectField("sampler", "Sampler", SAMPLERS, "tpe"),
    selectField("pruner", "Pruner", PRUNERS, "median"),
    selectField("objective.metric", "Objective metric", METRICS, "val_loss"),
    selectField("objective.mode", "Objective mode", MODES, "min"),
  ];
}

export async function sweepFormView(container, params, signal) {
  const fromId = params.get("from");
  const [catalog, source] = await Promise.all([
    api.catalog({ signal }),
    fromId ? api.run(fromId, { signal }) : null,
  ]);
  const base = source ? { ...catalog.defaults, ...source.spec } : catalog.defaults;
  const spec = specFields(catalog, base, {
    legends: ["Data", "Model", "Optimization", "Training", "Checkpoints and stopping"],
  });
  const own = searchFields(source ? `${source.name} sweep` : "sweep");
  const f = Object.fromEntries(own.map((x) => [x.path, x]));
  // An accuracy is better higher: the mode follows the metric, until changed by hand.
  f["objective.metric"].input.addEventListener("change", () => {
    f["objective.mode"].input.value = f["objective.metric"].input.value.includes("acc")
      ? "max"
      : "min";
  });
  const options = dimensionOptions(catalog, base.model.name);
  const space = searchSpace(options);
  const preset = el("button", {
    type: "button",
    id: "preset-optimizers",
    text: PRESET.label,
    onclick: () => {
      space.reset(PRESET.dimensions);
      f.sampler.input.value = "grid";
      f.pruner.input.value = "none";
      f.n_trials.input.value = String(PRESET.n_trials);
    },
  });
  space.add(options[0]); // the learning rate, the first thing to tune
  space.node.append(
    el("p", { class: "toolbar" }, el("span", { class: "muted", text: "Preset:" }), preset),
  );

  const formError = el("div", { class: "form-error", role: "alert", id: "form-error" });
  const submit = el("button", { type: "submit", class: "primary", text: "Start sweep" });
  const form = el(
    "form",
    { id: "sweep-form", novalidate: true },
    el(
      "div",
      { class: "grid" },
      el(
        "fieldset",
        {},
        el("legend", { text: "Search" }),
        own.map((x) => x.node),
      ),
      space.node,
    ),
    el("h2", { text: "Base spec: what every trial starts from" }),
    el("div", { class: "grid" }, spec.fieldsets),
    formError,
    el("div", { class: "form-actions" }, submit),
  );
  const title = source ? `New sweep from run ${fromId}` : "New sweep";
  container.replaceChildren(el("section", { class: "card" }, el("h1", { text: title }), form));

  // Where the server's errors go: a base field's path is under "base".
  function errorSlots() {
    const baseSlots = spec.all().map((x) => ({ path: `base.${x.path}`, error: x.error }));
    return [...own, ...space.errorSlots(), ...baseSlots];
  }
  function clearErrors() {
    for (const x of errorSlots()) x.error.textContent = "";
    formError.textContent = "";
  }
  function body(searched) {
    const read = (path) => f[path].read();
    const baseSpec = { ...spec.read(), name: read("name") };
    // A searched plugin choice brings its own options: each choice trains with its catalog
    // defaults (the base's options belong to the base's choice alone).
    for (const kind of ["optimizer", "scheduler"]) {
      if (Object.hasOwn(searched, `${kind}.name`)) baseSpec[kind].params = {};
    }
    return {
      name: read("name"),
      base: baseSpec,
      space: searched,
      n_trials: read("n_trials"),
      parallelism: read("parallelism"),
      sampler: read("sampler"),
      pruner: read("pruner"),
      objective: { metric: read("objective.metric"), mode: read("objective.mode") },
    };
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    const searched = space.read();
    if (!searched) return; // each row says what it misses
    submit.disabled = true;
    try {
      const sweep = await api.createSweep(body(searched));
      if (!signal.aborted) location.hash = `#/sweep/${sweep.id}`;
    } catch (error) {
      showFieldErrors(error, errorSlots(), formError);
    } finally {
      submit.disabled = false;
    }
  });
  return () => {};
}
