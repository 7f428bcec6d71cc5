// Several runs' curves overlaid per metric, and the spec fields that differ between them.

import { api } from "../api.js";
import { align, makeChart, PALETTE, setChartData } from "../charts.js";
import { el, formatNumber } from "../dom.js";

const METRICS = [["val_loss", "Validation loss"], ["train_loss", "Train loss"], ["val_accuracy", "Validation accuracy"], ["grad_norm", "Gradient norm"], ["lr", "Learning rate"]];

function flatten(obj, prefix = "", out = {}) {
  for (const [k, v] of Object.entries(obj || {})) {
    const path = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length) flatten(v, path, out);
    else out[path] = JSON.stringify(v);
  }
  return out;
}

export async function compareView(container, params) {
  const ids = (params.get("ids") || "").split(",").map(Number).filter((n) => Number.isInteger(n) && n > 0);
  if (ids.length < 2) {
    container.replaceChildren(el("section", { class: "card" }, el("h1", { text: "Compare" }), el("p", { class: "empty", text: "Select two or more runs in the Runs table, then press Compare selected." })));
    return;
  }
  const runs = await Promise.all(ids.map((id) => api.run(id)));
  const keys = METRICS.map(([k]) => k).join(",");
  const metrics = await Promise.all(ids.map((id) => api.metrics(id, { keys, max_points: 2000 })));
  const legend = el("ul", { class: "legend", id: "compare-legend" }, runs.map((r, i) => el("li", {}, el("span", { class: "swatch", style: `background:${PALETTE[i % PALETTE.length]}` }), el("a", { href: `#/run/${r.id}`, text: `${r.id} · ${r.name}` }))));
  const grid = el("div", { class: "charts", id: "compare-charts" });
  const flat = runs.map((r) => flatten(r.spec));
  const paths = [...new Set(flat.flatMap(Object.keys))].sort().filter((p) => new Set(flat.map((f) => f[p])).size > 1 && !["name", "notes"].includes(p));
  const diff = el("table", { class: "diff", id: "spec-diff" },
    el("thead", {}, el("tr", {}, el("th", { text: "Spec field" }), runs.map((r) => el("th", { text: r.name })))),
    el("tbody", {}, paths.length ? paths.map((p) => el("tr", {}, el("td", { text: p }), flat.map((f) => el("td", { text: f[p] ?? "–" })))) : el("tr", {}, el("td", { colspan: runs.length + 1, text: "The specs are identical." }))),
    el("tfoot", {}, el("tr", {}, el("td", { text: "best val loss" }), runs.map((r) => el("td", { text: formatNumber(r.summary.best_val_loss) })))));
  container.replaceChildren(
    el("section", { class: "card" }, el("h1", { text: `Compare ${runs.length} runs` }), legend, grid),
    el("section", { class: "card" }, el("h2", { text: "What differs" }), el("div", { class: "table-wrap" }, diff)));
  for (const [key, title] of METRICS) {
    const series = metrics.map((m) => m.series[key]);
    if (!series.some(Boolean)) continue;
    const box = el("div", { class: "chart", "data-chart": key });
    grid.append(box);
    const chart = makeChart(box, { title, labels: runs.map((r) => `${r.id} ${r.name}`) });
    setChartData(chart, align(series));
  }
}
