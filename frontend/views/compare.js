// Several runs' curves overlaid per metric, and the spec fields that differ between them.

import { api } from "../api.js";
import { align, makeChart, PALETTE, setChartData } from "../charts.js";
import { el, formatNumber } from "../dom.js";

const METRICS = [
  ["val_loss", "Validation loss"],
  ["train_loss", "Train loss"],
  ["val_accuracy", "Validation accuracy"],
  ["grad_norm", "Gradient norm"],
  ["lr", "Learning rate"],
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
      flat.map((f) => el("td", { text: f[p] ?? "–" })),
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
  const keys = METRICS.map(([k]) => k).join(",");
  const [runs, metrics] = await Promise.all([
    Promise.all(ids.map((id) => api.run(id, { signal }))),
    Promise.all(ids.map((id) => api.metrics(id, { keys, max_points: MAX_POINTS }, { signal }))),
  ]);
  const grid = el("div", { class: "charts", id: "compare-charts" });
  container.replaceChildren(
    el(
      "section",
      { class: "card" },
      el("h1", { text: `Compare ${runs.length} runs` }),
      legend(runs),
      grid,
    ),
    el(
      "section",
      { class: "card" },
      el("h2", { text: "What differs" }),
      el("div", { class: "table-wrap" }, specDiff(runs)),
    ),
  );
  const charts = [];
  for (const [key, title] of METRICS) {
    const series = metrics.map((m) => m.series[key]);
    if (!series.some(Boolean)) continue;
    const box = el("div", { class: "chart", "data-chart": key });
    grid.append(box);
    const chart = makeChart(box, { title, labels: runs.map((r) => `${r.id} ${r.name}`) });
    setChartData(chart, align(series));
    charts.push(chart);
  }
  return () => {
    for (const chart of charts) chart.destroy();
  };
}
