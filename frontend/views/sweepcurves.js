// A sweep's trials' curves overlaid on one uPlot chart (the objective's metric by epoch, a line
// per trial in the trial's colour), filtered to the trials a brush in the parallel coordinates
// keeps, with how many match. Reads each trial's series, and reads a trial's again while it
// trains and once as it ends.

import { api } from "../api.js";
import { align, makeChart, setChartData } from "../charts.js";
import { el } from "../dom.js";
import { FINAL_STATUSES } from "../status.js";
import { trialColor, trialsInOrder } from "../sweepcharts.js";

const MAX_POINTS = 2000; // per series: the server downsamples longer ones

export function sweepCurves(metric, signal) {
  const count = el("p", { class: "muted", id: "curves-count", role: "status" });
  const box = el("div", { class: "chart", "data-chart": "sweep-curves", id: "sweep-curves" });
  const node = el(
    "section",
    { class: "card" },
    el("h2", { text: `${metric} by epoch, per trial` }),
    count,
    box,
  );
  const series = new Map(); // run id -> {steps, values}
  const readAs = new Map(); // run id -> the trial's status when its series was read
  let trials = [];
  let keep = null; // run ids the brush keeps; null: no brush, every trial
  let chart = null;
  let shownIds = "";

  // The trials whose series is missing or stale: never read, training, or changed status since.
  function stale(list) {
    return list.filter(
      (t) =>
        !readAs.has(t.run_id) || !FINAL_STATUSES.has(t.status) || readAs.get(t.run_id) !== t.status,
    );
  }
  async function read(trial) {
    const answer = await api.metrics(
      trial.run_id,
      { keys: metric, max_points: MAX_POINTS },
      { signal },
    );
    series.set(trial.run_id, answer.series[metric]);
    readAs.set(trial.run_id, trial.status);
  }

  // One read at a time: a call while one is on its way asks for one more after it.
  let busy = null;
  let again = false;
  async function refresh(sweep) {
    trials = trialsInOrder(sweep).filter((t) => t.run_id !== null && t.run_id !== undefined);
    if (busy) {
      again = true;
      return busy;
    }
    busy = (async () => {
      do {
        again = false;
        // Queued trials have nothing to read yet.
        const todo = stale(trials).filter((t) => t.status !== "queued");
        await Promise.all(todo.map(read));
        draw();
      } while (again && !signal.aborted);
    })().finally(() => {
      busy = null;
    });
    return busy;
  }

  function draw() {
    const ids = trials.map((t) => t.run_id).join(",");
    if (!chart || ids !== shownIds) {
      chart?.destroy();
      chart = makeChart(box, {
        title: "",
        labels: trials.map((t) => `trial ${t.number}`),
        colors: trials.map(trialColor),
        height: 280,
      });
      shownIds = ids;
    }
    setChartData(chart, align(trials.map((t) => series.get(t.run_id))));
    showFilter();
  }
  function showFilter() {
    const shown = trials.filter((t) => !keep || keep.has(t.run_id));
    trials.forEach((t, i) => {
      const show = !keep || keep.has(t.run_id);
      if (chart.series[i + 1].show !== show) chart.setSeries(i + 1, { show });
    });
    box.dataset.shown = String(shown.length);
    count.textContent = keep
      ? `${shown.length} of ${trials.length} trials match the brushed ranges`
      : `${trials.length} trials`;
  }
  // `ids`: the run ids to show, or null for all.
  function filter(ids) {
    keep = ids;
    if (chart) showFilter();
  }
  function destroy() {
    chart?.destroy();
    chart = null;
  }
  return { node, refresh, filter, destroy };
}
