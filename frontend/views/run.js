// One run: live charts fed by server-sent events, spec, status, log tail, checkpoints, actions.

import { api, fileUrl, runEvents } from "../api.js";
import { align, makeChart, resizeCharts, setChartData, smooth } from "../charts.js";
import { badge, el, formatDuration, formatNumber } from "../dom.js";

const CHARTS = [
  { id: "loss", title: "Loss", keys: ["train_loss", "val_loss"] },
  { id: "accuracy", title: "Accuracy", keys: ["train_accuracy", "val_accuracy"] },
  { id: "grad_norm", title: "Gradient norm", keys: ["grad_norm"] },
  { id: "lr", title: "Learning rate", keys: ["lr"] },
  { id: "step_loss", title: "Step loss", keys: ["step/train_loss"], x: "step" },
  { id: "throughput", title: "Samples per second", keys: ["samples_per_second"] },
];
const FINAL = new Set(["completed", "failed", "diverged", "cancelled", "pruned"]);
const LOG_LINES = 300;

// Points of one key, kept sorted by step; a point for an existing step replaces it.
class SeriesStore {
  constructor() { this.series = new Map(); }
  load(series) {
    for (const [key, s] of Object.entries(series)) this.series.set(key, { steps: [...s.steps], values: [...s.values], timestamps: [...s.timestamps] });
  }
  add(points) {
    for (const p of points) {
      const s = this.series.get(p.key) || { steps: [], values: [], timestamps: [] };
      this.series.set(p.key, s);
      let i = s.steps.length;
      if (i && s.steps[i - 1] >= p.step) i = s.steps.findIndex((x) => x >= p.step);
      if (s.steps[i] === p.step) { s.values[i] = p.value; s.timestamps[i] = p.timestamp; continue; }
      s.steps.splice(i, 0, p.step); s.values.splice(i, 0, p.value); s.timestamps.splice(i, 0, p.timestamp);
    }
  }
  get(key) { return this.series.get(key); }
}

export async function runView(container, id, setConnection) {
  const run = await api.run(id);
  const store = new SeriesStore();
  const view = { smoothing: 0, log: false, x: "step", zoomed: new Map() };
  const header = el("div", { class: "run-header" });
  const errorBox = el("div", { class: "run-error", role: "alert" });
  const chartGrid = el("div", { class: "charts", id: "charts" });
  const ckptBody = el("tbody");
  const logBox = el("pre", { class: "log", id: "log" });
  const specBox = el("pre", { class: "spec", id: "spec", text: JSON.stringify(run.spec, null, 2) });
  const smoothing = el("input", { type: "range", min: 0, max: 0.99, step: 0.01, value: 0, id: "smoothing", "aria-label": "Smoothing" });
  const logScale = el("input", { type: "checkbox", id: "log-scale" });
  const xAxis = el("select", { id: "x-axis", "aria-label": "X axis" }, el("option", { value: "step", text: "epoch / step" }), el("option", { value: "time", text: "wall time" }));
  container.replaceChildren(
    el("section", { class: "card" }, header, errorBox,
      el("div", { class: "toolbar chart-controls" },
        el("label", { for: "smoothing", text: "Smoothing" }), smoothing,
        el("label", {}, logScale, " Log scale"),
        el("label", { for: "x-axis", text: "X axis" }), xAxis,
        el("small", { text: "drag to zoom (refetches full detail), double-click to reset" })),
      chartGrid),
    el("section", { class: "card" }, el("h2", { text: "Checkpoints" }),
      el("table", { class: "checkpoints", id: "checkpoints" }, el("thead", {}, el("tr", {}, ["Id", "Epoch", "Size", "Val loss", "Best", ""].map((h) => el("th", { text: h })))), ckptBody)),
    el("section", { class: "card two" }, el("div", {}, el("h2", { text: "Log" }), logBox), el("div", {}, el("h2", { text: "Spec" }), specBox)));

  let charts = [];
  function buildCharts() {
    charts.forEach((c) => c.chart.destroy());
    chartGrid.replaceChildren();
    charts = CHARTS.map((def) => {
      const box = el("div", { class: "chart", "data-chart": def.id });
      chartGrid.append(box);
      const xLabel = view.x === "time" ? "time" : def.x || "epoch";
      const chart = makeChart(box, { title: def.title, labels: def.keys, xLabel, logScale: view.log, onZoom: view.x === "time" ? null : (lo, hi) => zoom(def, lo, hi) });
      return { def, chart };
    });
    draw();
  }
  function columns(def, source) {
    const list = def.keys.map((k) => source(k));
    if (view.x === "time") return align(list.map((s) => s && { steps: s.timestamps, values: s.values }));
    return align(list);
  }
  function draw() {
    for (const { def, chart } of charts) {
      const data = columns(def, (k) => view.zoomed.get(def.id)?.[k] || store.get(k));
      setChartData(chart, [data[0], ...data.slice(1).map((v) => smooth(v, view.smoothing))]);
    }
  }
  let pending = false;
  const redraw = () => { if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; draw(); }); } };
  async function zoom(def, lo, hi) {
    if (lo === null) view.zoomed.delete(def.id);
    else {
      const detail = await api.metrics(id, { keys: def.keys.join(","), x_min: lo, x_max: hi, max_points: 2000 });
      view.zoomed.set(def.id, detail.series);
    }
    draw();
  }

  function renderHeader(r) {
    const actions = [];
    if (!FINAL.has(r.status)) actions.push(el("button", { id: "cancel-run", text: "Cancel", onclick: () => api.cancel(id).then(renderHeader) }));
    if (r.kind === "job" && ["failed", "cancelled", "diverged"].includes(r.status)) actions.push(el("button", { id: "resume-run", text: "Resume", onclick: () => api.resume(id).then(renderHeader) }));
    if (r.kind === "job") actions.push(el("button", { id: "clone-run", text: "Clone", onclick: () => { location.hash = `#/new?clone=${id}`; } }));
    const eta = r.status === "running" && r.eta_seconds !== null ? ` · ETA ${formatDuration(r.eta_seconds)}` : "";
    header.replaceChildren(
      el("h1", { id: "run-name", text: r.name }),
      el("div", { class: "run-meta" }, badge(r.status), el("span", { id: "run-progress", text: ` epoch ${r.epoch}/${r.epochs}${eta}` }),
        el("span", { text: ` · best val loss ${formatNumber(r.summary.best_val_loss)}` }), el("span", { text: r.device ? ` · ${r.device}` : "" })),
      el("div", { class: "actions" }, actions));
    errorBox.replaceChildren(r.error ? el("p", { class: "error", text: r.error }) : "");
  }
  function renderCheckpoints(list) {
    ckptBody.replaceChildren(...list.map((c) => el("tr", {},
      el("td", { text: c.id }), el("td", { text: c.epoch }), el("td", { text: `${(c.size_bytes / 1024).toFixed(1)} KiB` }),
      el("td", { text: formatNumber(c.metrics.val_loss) }), el("td", { text: c.is_best ? "★" : "" }),
      el("td", {}, el("a", { href: fileUrl(`/runs/${id}/checkpoints/${encodeURIComponent(c.id)}`), download: "", text: "Download" })))));
  }
  // A checkpoint event can also retire older files (retention): re-read the whole list.
  const refreshCheckpoints = () => api.checkpoints(id).then(renderCheckpoints).catch(() => {});
  const logLines = [];
  function addLog(lines) {
    logLines.push(...lines);
    logLines.splice(0, Math.max(0, logLines.length - LOG_LINES));
    logBox.textContent = logLines.join("\n");
    logBox.scrollTop = logBox.scrollHeight;
  }

  renderHeader(run);
  const initial = await api.metrics(id, { max_points: 2000 });
  store.load(initial.series);
  buildCharts();
  renderCheckpoints(await api.checkpoints(id));

  smoothing.addEventListener("input", () => { view.smoothing = Number(smoothing.value); draw(); });
  logScale.addEventListener("change", () => { view.log = logScale.checked; buildCharts(); });
  xAxis.addEventListener("change", () => { view.x = xAxis.value; view.zoomed.clear(); buildCharts(); });
  const onResize = () => resizeCharts(charts.map((c) => c.chart), chartGrid.firstChild || chartGrid);
  window.addEventListener("resize", onResize);

  // Live: start from the cursor the metrics read returned, so nothing is fetched twice.
  const source = runEvents(id, initial.cursor, {
    metrics: (data) => { store.add(data.points); redraw(); },
    status: (r) => { renderHeader(r); if (FINAL.has(r.status)) setTimeout(() => source.close(), 1500); },
    checkpoint: refreshCheckpoints,
    log: (data) => addLog(data.lines),
  }, setConnection);
  return () => { source.close(); window.removeEventListener("resize", onResize); charts.forEach((c) => c.chart.destroy()); setConnection(true); };
}
