// One run: live charts fed by server-sent events, spec, status, log tail, checkpoints, actions;
// for a check run (learning-rate range test, preflight) its result instead of the charts; for a
// diverged run why it diverged; the gradient norm per layer when the run logged it.

import { api, fileUrl, ignoreAbort, runEvents } from "../api.js";
import { chartView } from "../chartview.js";
import { badge, el, formatDuration, formatNumber } from "../dom.js";
import { SeriesStore } from "../series.js";
import { FINAL_STATUSES, RESUMABLE_STATUSES, Status } from "../status.js";
import { CHECK_KINDS, checkPanel } from "./checkresult.js";
import { diagnosisPanel } from "./diagnosis.js";
import { layerGrads } from "./layergrads.js";

// The ordinary charts: fixed keys, so the many `layer_grad_norm/*` series (and any other key
// the run logs) never get a chart each; the heatmap shows those. `autoLog`: a log scale by
// default once the values span more than a decade.
const CHARTS = [
  { id: "loss", title: "Loss", keys: ["train_loss", "val_loss"] },
  { id: "accuracy", title: "Accuracy", keys: ["train_accuracy", "val_accuracy"] },
  { id: "grad_norm", title: "Gradient norm", keys: ["grad_norm"] },
  { id: "lr", title: "Learning rate", keys: ["lr"], autoLog: true },
  { id: "step_loss", title: "Step loss", keys: ["step/train_loss"], x: "step" },
  { id: "throughput", title: "Samples per second", keys: ["samples_per_second"] },
  // System metrics' step is seconds into the run (tracking/system.py).
  { id: "cpu", title: "CPU %", keys: ["system/cpu_percent"], x: "second" },
  { id: "memory", title: "Memory (MB)", keys: ["system/memory_mb"], x: "second" },
];
// A GPU's utilization and memory, one line per GPU, for a run that recorded any
// (`system/gpu{i}_util`, `system/gpu{i}_memory_mb`: tracking/system.py).
function gpuCharts(keys) {
  const matching = (pattern) =>
    keys
      .filter((k) => pattern.test(k))
      .sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  const util = matching(/^system\/gpu\d+_util$/);
  const memory = matching(/^system\/gpu\d+_memory_mb$/);
  return [
    util.length ? { id: "gpu", title: "GPU %", keys: util, x: "second" } : null,
    memory.length
      ? { id: "gpu_memory", title: "GPU memory (MB)", keys: memory, x: "second" }
      : null,
  ].filter(Boolean);
}
const X_OPTIONS = [
  { value: "step", label: "epoch / step" },
  { value: "time", label: "wall time" },
];
const MAX_POINTS = 2000; // per series and read: the server downsamples longer ones
const LOG_LINES = 300;
// The server ends a final run's stream; closing it ourselves a moment later stops the
// browser from reconnecting, after the last events have arrived.
const CLOSE_AFTER_FINAL_MS = 1500;

// The page's skeleton; the parts filled in later are returned by name. A check run shows its
// result (`check`) where a job shows its charts, and has no checkpoints.
function layout(run, { toolbar, chartGrid, grads, check }) {
  const parts = {
    header: el("div", { class: "run-header" }),
    errorBox: el("div", { class: "run-error", role: "alert" }),
    diagnosis: el("div"),
    checkpoints: el("tbody"),
    log: el("pre", { class: "log", id: "log" }),
  };
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
  const top = [parts.header, parts.errorBox, parts.diagnosis];
  parts.sections = [
    check
      ? el("section", { class: "card" }, ...top, check.node)
      : el("section", { class: "card" }, ...top, toolbar, chartGrid),
    check ? null : grads.node,
    check
      ? null
      : el("section", { class: "card" }, el("h2", { text: "Checkpoints" }), checkpointTable),
    el(
      "section",
      { class: "card two" },
      el("div", {}, el("h2", { text: "Log" }), parts.log),
      el("div", {}, el("h2", { text: "Spec" }), spec),
    ),
  ].filter(Boolean);
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
    const sweep = () => {
      location.hash = `#/sweeps/new?from=${run.id}`;
    };
    buttons.push(el("button", { id: "sweep-run", text: "Sweep this", onclick: sweep }));
  }
  return buttons;
}

// "cpu", or "2 × cpu" for a run on several devices.
const devicesText = (r) => (r.devices > 1 ? `${r.devices} × ${r.device}` : r.device);

export async function runView(container, { id, setConnection }, signal) {
  // Every read comes before anything that needs cleaning up (charts, listeners, the stream):
  // leaving during a read then leaves nothing behind.
  const [run, initial, checkpoints] = await Promise.all([
    api.run(id, { signal }),
    api.metrics(id, { max_points: MAX_POINTS }, { signal }),
    api.checkpoints(id, { signal }),
  ]);
  const store = new SeriesStore();
  store.load(initial.series);
  const isCheck = Object.hasOwn(CHECK_KINDS, run.kind);
  // "Use this learning rate": the form, filled from this run's spec, with that lr.
  const useLr = (lr) => {
    location.hash = `#/new?clone=${id}&lr=${encodeURIComponent(lr)}`;
  };
  const check = isCheck ? checkPanel({ id: "check-result", onUseLr: useLr }) : null;

  // Zoomed charts show their range at full detail, read again from the server.
  const zoomed = new Map();
  async function zoom(def, lo, hi) {
    if (lo === null) zoomed.delete(def.id);
    else {
      const range = { keys: def.keys.join(","), x_min: lo, x_max: hi, max_points: MAX_POINTS };
      const detail = await api.metrics(id, range, { signal });
      zoomed.set(def.id, detail.series);
    }
    charts.draw();
  }
  const chartGrid = el("div", { class: "charts", id: "charts" });
  // GPU charts for the GPUs the first read found; one appearing later shows on a reload.
  const defs = isCheck ? [] : [...CHARTS, ...gpuCharts(Object.keys(initial.series))];
  const charts = chartView(chartGrid, defs, {
    series: (def) => def.keys.map((k) => zoomed.get(def.id)?.[k] || store.get(k)),
    chartOptions: (def, view) => ({
      labels: def.keys,
      xLabel: view.x === "time" ? "time" : def.x || "epoch",
      onZoom: view.x === "time" ? null : (lo, hi) => zoom(def, lo, hi).catch(ignoreAbort),
    }),
    xOptions: X_OPTIONS,
    hint: "drag to zoom (refetches full detail), double-click to reset",
    onChange: (what) => {
      if (what === "x") zoomed.clear();
    },
  });
  const grads = layerGrads();
  const parts = layout(run, { toolbar: charts.toolbar, chartGrid, grads, check });
  container.replaceChildren(...parts.sections);

  function renderHeader(r) {
    const running = r.status === Status.running && r.eta_seconds !== null;
    const eta = running ? ` · ETA ${formatDuration(r.eta_seconds)}` : "";
    const progress = isCheck ? ` ${CHECK_KINDS[r.kind]}` : ` epoch ${r.epoch}/${r.epochs}${eta}`;
    parts.header.replaceChildren(
      el("h1", { id: "run-name", text: r.name }),
      el(
        "div",
        { class: "run-meta" },
        badge(r.status),
        el("span", { id: "run-progress", text: progress }),
        isCheck
          ? null
          : el("span", { text: ` · best val loss ${formatNumber(r.summary.best_val_loss)}` }),
        el("span", { text: r.device ? ` · ${devicesText(r)}` : "" }),
      ),
      el("div", { class: "actions" }, actionButtons(r, render)),
    );
    parts.errorBox.replaceChildren(
      r.error ? el("p", { class: "error", text: r.error }) : "",
      r.queue_reason ? el("p", { id: "queue-reason", class: "waiting", text: r.queue_reason }) : "",
    );
  }
  function render(r) {
    renderHeader(r);
    parts.diagnosis.replaceChildren(diagnosisPanel(r.diagnosis) ?? "");
    check?.show(r);
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

  render(run);
  renderCheckpoints(checkpoints);
  charts.build();
  grads.update(store);

  // Live: start from the cursor the metrics read returned, so nothing is fetched twice.
  const handlers = {
    metrics: (data) => {
      store.add(data.points);
      charts.redraw();
      grads.redraw(store);
    },
    status: (r) => {
      render(r);
      if (!FINAL_STATUSES.has(r.status)) return;
      ended = true;
      setTimeout(() => source.close(), CLOSE_AFTER_FINAL_MS);
      // The final run once more, whole: its summary and diagnosis are written as it ends.
      api
        .run(id, { signal })
        .then(render)
        .catch(() => {});
    },
    checkpoint: refreshCheckpoints,
    log: (data) => addLog(data.lines),
  };
  // The server ends a final run's stream after its last events: that end is no lost connection.
  let ended = false;
  const onConnection = (state) => {
    if (ended && state === false) source.close();
    setConnection(ended || state);
  };
  const source = runEvents(id, initial.cursor, handlers, { onConnection, signal });
  return () => {
    source.close();
    charts.destroy();
    grads.destroy();
    check?.destroy();
    setConnection(true);
  };
}
