// Several runs' curves overlaid per metric, under the run page's chart controls, with one
// legend for every chart (hovering a chart reads its values), and the spec fields that differ.

import { api } from "../api.js";
import { PALETTE } from "../charts.js";
import { chartView } from "../chartview.js";
import { el, formatNumber } from "../dom.js";

const METRICS = [
  { id: "val_loss", title: "Validation loss" },
  { id: "train_loss", title: "Train loss" },
  { id: "val_accuracy", title: "Validation accuracy" },
  { id: "grad_norm", title: "Gradient norm" },
  { id: "lr", title: "Learning rate", autoLog: true },
];
// Runs started at different times: their time axis counts from each run's start.
const X_OPTIONS = [
  { value: "step", label: "epoch" },
  { value: "elapsed", label: "time since start" },
];
const MAX_POINTS = 2000; // per series: the server downsamples longer ones
const NOT_COMPARED = ["name", "notes"]; // differ between any two runs, and say nothing

// {"a": {"b": 1}} -> {"a.b": "1"}: spec fields by path, values as JSON text.
function flatten(obj, prefix = "", out = {}) {
  for (const [k, v] of Object.entries(obj || {})) {
    const path = prefix ? `${prefix}.${k}` : k;
    const nested = v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length;
    if (nested) flatten(v, path, out);
    else out[path] = JSON.stringify(v);
  }
  return out;
}

// A long value (a tracked script's git diff) shows its start; the whole is its tooltip.
const CELL_CHARS = 120;
const clip = (text) => (text.length > CELL_CHARS ? `${text.slice(0, CELL_CHARS)}…` : text);

function legend(runs) {
  const item = (r, i) =>
    el(
      "li",
      {},
      el("span", { class: "swatch", style: `background:${PALETTE[i % PALETTE.length]}` }),
      el("a", { href: `#/run/${r.id}`, text: `${r.id} · ${r.name}` }),
    );
  return el("ul", { class: "legend", id: "compare-legend" }, runs.map(item));
}

// The spec fields whose values are not all the same, one row each, and the best val losses.
function specDiff(runs) {
  const flat = runs.map((r) => flatten(r.spec));
  const differs = (p) => new Set(flat.map((f) => f[p])).size > 1 && !NOT_COMPARED.includes(p);
  const paths = [...new Set(flat.flatMap(Object.keys))].sort().filter(differs);
  const fieldRow = (p) =>
    el(
      "tr",
      {},
      el("td", { text: p }),
      flat.map((f) => el("td", { text: clip(f[p] ?? "–"), title: f[p] })),
    );
  const identical = el(
    "tr",
    {},
    el("td", { colspan: runs.length + 1, text: "The specs are identical." }),
  );
  const best = runs.map((r) => el("td", { text: formatNumber(r.summary.best_val_loss) }));
  return el(
    "table",
    { class: "diff", id: "spec-diff" },
    el(
      "thead",
      {},
      el(
        "tr",
        {},
        el("th", { text: "Spec field" }),
        runs.map((r) => el("th", { text: r.name })),
      ),
    ),
    el("tbody", {}, paths.length ? paths.map(fieldRow) : identical),
    el("tfoot", {}, el("tr", {}, el("td", { text: "best val loss" }), best)),
  );
}

function emptyState(container) {
  const hint = "Select two or more runs in the Runs table, then press Compare selected.";
  container.replaceChildren(
    el(
      "section",
      { class: "card" },
      el("h1", { text: "Compare" }),
      el("p", { class: "empty", text: hint }),
    ),
  );
}

export async function compareView(container, params, signal) {
  const ids = (params.get("ids") || "")
    .split(",")
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 0);
  if (ids.length < 2) {
    emptyState(container);
    return () => {};
  }
  const keys = METRICS.map((m) => m.id).join(",");
  const [runs, metrics] = await Promise.all([
    Promise.all(ids.map((id) => api.run(id, { signal }))),
    Promise.all(ids.map((id) => api.metrics(id, { keys, max_points: MAX_POINTS }, { signal }))),
  ]);
  // Each chart's own legend shows only while the cursor is over it, as a tooltip with the
  // values there (insight.css, .hover-legend); the legend above names the runs for all of them.
  const grid = el("div", { class: "charts hover-legend", id: "compare-charts" });
  const startOf = (run, series) =>
    run.started_at ? Date.parse(run.started_at) / 1000 : (series?.timestamps[0] ?? 0);
  const charts = chartView(
    grid,
    METRICS.filter((m) => metrics.some((r) => r.series[m.id])),
    {
      series: (def) => metrics.map((m) => m.series[def.id]),
      chartOptions: (_def, view) => ({
        labels: runs.map((r) => `${r.id} ${r.name}`),
        xLabel: view.x === "elapsed" ? "seconds since start" : "epoch",
      }),
      origins: runs.map((r, i) => startOf(r, Object.values(metrics[i].series)[0])),
      xOptions: X_OPTIONS,
      hint: "drag to zoom, double-click to reset",
    },
  );
  container.replaceChildren(
    el(
      "section",
      { class: "card" },
      el("h1", { text: `Compare ${runs.length} runs` }),
      legend(runs),
      charts.toolbar,
      grid,
    ),
    el(
      "section",
      { class: "card" },
      el("h2", { text: "What differs" }),
      el("div", { class: "table-wrap" }, specDiff(runs)),
    ),
  );
  charts.build();
  return () => charts.destroy();
}
