// One run: live charts fed by server-sent events, spec, status, log tail, checkpoints, actions.

import { api, fileUrl, ignoreAbort, runEvents } from "../api.js";
import { align, makeChart, resizeCharts, setChartData, smooth } from "../charts.js";
import { badge, el, formatDuration, formatNumber } from "../dom.js";
import { SeriesStore } from "../series.js";
import { FINAL_STATUSES, RESUMABLE_STATUSES, Status } from "../status.js";

const CHARTS = [
  { id: "loss", title: "Loss", keys: ["train_loss", "val_loss"] },
  { id: "accuracy", title: "Accuracy", keys: ["train_accuracy", "val_accuracy"] },
  { id: "grad_norm", title: "Gradient norm", keys: ["grad_norm"] },
  { id: "lr", title: "Learning rate", keys: ["lr"] },
  { id: "step_loss", title: "Step loss", keys: ["step/train_loss"], x: "step" },
  { id: "throughput", title: "Samples per second", keys: ["samples_per_second"] },
];
const MAX_POINTS = 2000; // per series and read: the server downsamples longer ones
const LOG_LINES = 300;
// The server ends a final run's stream; closing it ourselves a moment later stops the
// browser from reconnecting, after the last events have arrived.
const CLOSE_AFTER_FINAL_MS = 1500;

// The page's skeleton; the parts filled in later are returned by name.
function layout(run) {
  const parts = {
    header: el("div", { class: "run-header" }),
    errorBox: el("div", { class: "run-error", role: "alert" }),
    chartGrid: el("div", { class: "charts", id: "charts" }),
    checkpoints: el("tbody"),
    log: el("pre", { class: "log", id: "log" }),
    smoothing: el("input", {
      type: "range",
      min: 0,
      max: 0.99,
      step: 0.01,
      value: 0,
      id: "smoothing",
      "aria-label": "Smoothing",
    }),
    logScale: el("input", { type: "checkbox", id: "log-scale" }),
    xAxis: el(
      "select",
      { id: "x-axis", "aria-label": "X axis" },
      el("option", { value: "step", text: "epoch / step" }),
      el("option", { value: "time", text: "wall time" }),
    ),
  };
  const controls = el(
    "div",
    { class: "toolbar chart-controls" },
    el("label", { for: "smoothing", text: "Smoothing" }),
    parts.smoothing,
    el("label", {}, parts.logScale, " Log scale"),
    el("label", { for: "x-axis", text: "X axis" }),
    parts.xAxis,
    el("small", { text: "drag to zoom (refetches full detail), double-click to reset" }),
  );
  const columns = ["Id", "Epoch", "Size", "Val loss", "Best", ""];
  const checkpointTable = el(
    "table",
    { class: "checkpoints", id: "checkpoints" },
    el(
      "thead",
      {},
      el(
        "tr",
        {},
        columns.map((h) => el("th", { text: h })),
      ),
    ),
    parts.checkpoints,
  );
  const spec = el("pre", { class: "spec", id: "spec", text: JSON.stringify(run.spec, null, 2) });
  parts.sections = [
    el("section", { class: "card" }, parts.header, parts.errorBox, controls, parts.chartGrid),
    el("section", { class: "card" }, el("h2", { text: "Checkpoints" }), checkpointTable),
    el(
      "section",
      { class: "card two" },
      el("div", {}, el("h2", { text: "Log" }), parts.log),
      el("div", {}, el("h2", { text: "Spec" }), spec),
    ),
  ];
  return parts;
}

function checkpointRow(runId, c) {
  const href = fileUrl(`/runs/${runId}/checkpoints/${encodeURIComponent(c.id)}`);
  return el(
    "tr",
    {},
    el("td", { text: c.id }),
    el("td", { text: c.epoch }),
    el("td", { text: `${(c.size_bytes / 1024).toFixed(1)} KiB` }),
    el("td", { text: formatNumber(c.metrics.val_loss) }),
    el("td", { text: c.is_best ? "★" : "" }),
    el("td", {}, el("a", { href, download: "", text: "Download" })),
  );
}

// The buttons a run's state allows; `onChange` gets the run a button's request returns.
function actionButtons(run, onChange) {
  const buttons = [];
  if (!FINAL_STATUSES.has(run.status)) {
    const cancel = () => api.cancel(run.id).then(onChange);
    buttons.push(el("button", { id: "cancel-run", text: "Cancel", onclick: cancel }));
  }
  if (run.kind === "job" && RESUMABLE_STATUSES.has(run.status)) {
    const resume = () => api.resume(run.id).then(onChange);
    buttons.push(el("button", { id: "resume-run", text: "Resume", onclick: resume }));
  }
  if (run.kind === "job") {
    const clone = () => {
      location.hash = `#/new?clone=${run.id}`;
    };
    buttons.push(el("button", { id: "clone-run", text: "Clone", onclick: clone }));
  }
  return buttons;
}

export async function runView(container, { id, setConnection }, signal) {
  // Every read comes before anything that needs cleaning up (charts, listeners, the stream):
  // leaving during a read then leaves nothing behind.
  const [run, initial, checkpoints] = await Promise.all([
    api.run(id, { signal }),
    api.metrics(id, { max_points: MAX_POINTS }, { signal }),
    api.checkpoints(id, { signal }),
  ]);
  const parts = layout(run);
  container.replaceChildren(...parts.sections);
  const store = new SeriesStore();
  store.load(initial.series);
  const view = { smoothing: 0, log: false, x: "step", zoomed: new Map() };

  let charts = [];
  function buildCharts() {
    for (const { chart } of charts) chart.destroy();
    parts.chartGrid.replaceChildren();
    charts = CHARTS.map((def) => {
      const box = el("div", { class: "chart", "data-chart": def.id });
      parts.chartGrid.append(box);
      const chart = makeChart(box, {
        title: def.title,
        labels: def.keys,
        xLabel: view.x === "time" ? "time" : def.x || "epoch",
        logScale: view.log,
        onZoom: view.x === "time" ? null : (lo, hi) => zoom(def, lo, hi).catch(ignoreAbort),
      });
      return { def, chart };
    });
    draw();
  }
  function columns(def) {
    const list = def.keys.map((k) => view.zoomed.get(def.id)?.[k] || store.get(k));
    if (view.x === "time") {
      return align(list.map((s) => s && { steps: s.timestamps, values: s.values }));
    }
    return align(list);
  }
  function draw() {
    for (const { def, chart } of charts) {
      const [xs, ...ys] = columns(def);
      setChartData(chart, [xs, ...ys.map((v) => smooth(v, view.smoothing))]);
    }
  }
  // Live points arrive in bursts: draw at most once a frame.
  let pending = false;
  function redraw() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      draw();
    });
  }
  async function zoom(def, lo, hi) {
    if (lo === null) view.zoomed.delete(def.id);
    else {
      const range = { keys: def.keys.join(","), x_min: lo, x_max: hi, max_points: MAX_POINTS };
      const detail = await api.metrics(id, range, { signal });
      view.zoomed.set(def.id, detail.series);
    }
    draw();
  }

  function renderHeader(r) {
    const running = r.status === Status.running && r.eta_seconds !== null;
    const eta = running ? ` · ETA ${formatDuration(r.eta_seconds)}` : "";
    parts.header.replaceChildren(
      el("h1", { id: "run-name", text: r.name }),
      el(
        "div",
        { class: "run-meta" },
        badge(r.status),
        el("span", { id: "run-progress", text: ` epoch ${r.epoch}/${r.epochs}${eta}` }),
        el("span", { text: ` · best val loss ${formatNumber(r.summary.best_val_loss)}` }),
        el("span", { text: r.device ? ` · ${r.device}` : "" }),
      ),
      el("div", { class: "actions" }, actionButtons(r, renderHeader)),
    );
    parts.errorBox.replaceChildren(r.error ? el("p", { class: "error", text: r.error }) : "");
  }
  function renderCheckpoints(list) {
    parts.checkpoints.replaceChildren(...list.map((c) => checkpointRow(id, c)));
  }
  // A checkpoint event can also retire older files (retention): re-read the whole list.
  function refreshCheckpoints() {
    api
      .checkpoints(id, { signal })
      .then(renderCheckpoints)
      .catch(() => {});
  }
  const logLines = [];
  function addLog(lines) {
    logLines.push(...lines);
    logLines.splice(0, Math.max(0, logLines.length - LOG_LINES));
    parts.log.textContent = logLines.join("\n");
    parts.log.scrollTop = parts.log.scrollHeight;
  }

  renderHeader(run);
  renderCheckpoints(checkpoints);
  buildCharts();
  parts.smoothing.addEventListener("input", () => {
    view.smoothing = Number(parts.smoothing.value);
    draw();
  });
  parts.logScale.addEventListener("change", () => {
    view.log = parts.logScale.checked;
    buildCharts();
  });
  parts.xAxis.addEventListener("change", () => {
    view.x = parts.xAxis.value;
    view.zoomed.clear();
    buildCharts();
  });
  const onResize = () => {
    resizeCharts(
      charts.map((c) => c.chart),
      parts.chartGrid.firstChild || parts.chartGrid,
    );
  };
  window.addEventListener("resize", onResize);

  // Live: start from the cursor the metrics read returned, so nothing is fetched twice.
  const handlers = {
    metrics: (data) => {
      store.add(data.points);
      redraw();
    },
    status: (r) => {
      renderHeader(r);
      if (FINAL_STATUSES.has(r.status)) setTimeout(() => source.close(), CLOSE_AFTER_FINAL_MS);
    },
    checkpoint: refreshCheckpoints,
    log: (data) => addLog(data.lines),
  };
  const source = runEvents(id, initial.cursor, handlers, { onConnection: setConnection, signal });
  return () => {
    source.close();
    window.removeEventListener("resize", onResize);
    for (const { chart } of charts) chart.destroy();
    setConnection(true);
  };
}
