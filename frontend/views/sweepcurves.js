// A sweep's trials' curves overlaid on one uPlot chart (the objective's metric by epoch, a line
// per trial in the trial's colour), filtered to the trials a brush in the parallel coordinates
// keeps, with how many match. Reads the trials' series in one request, then again those of
// trials in training and of trials that have just ended.

import { api } from "../api.js";
import { align, makeChart, setChartData } from "../charts.js";
import { el } from "../dom.js";
import { FINAL_STATUSES } from "../status.js";
import { trialColor, trialsInOrder } from "../sweepcharts.js";

const MAX_POINTS = 2000; // per series: the server downsamples longer ones

// Beyond this many trials the chart has no legend: the trials table names them.
const LEGEND_TRIALS = 30;
// Beyond this many stale trials the read asks for all of them (the list would not fit a URL).
const MAX_LISTED = 200;

export function sweepCurves(sweepId, metric, signal) {
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
  let drawn = []; // the trials the chart has a series of, in its order

  // The trials whose series is missing or stale: never read, training, or changed status since.
  function stale(list) {
    return list.filter(
      (t) =>
        !readAs.has(t.run_id) || !FINAL_STATUSES.has(t.status) || readAs.get(t.run_id) !== t.status,
    );
  }
  async function read(todo) {
    const params = { key: metric, max_points: MAX_POINTS };
    if (todo.length <= MAX_LISTED) params.runs = todo.map((t) => t.run_id).join(",");
    const answer = await api.sweepCurves(sweepId, params, { signal });
    for (const trial of todo) {
      const found = answer.series[trial.run_id];
      if (found) series.set(trial.run_id, found);
      readAs.set(trial.run_id, trial.status);
    }
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
        if (todo.length) await read(todo);
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
        legend: trials.length <= LEGEND_TRIALS,
      });
      shownIds = ids;
    }
    drawn = trials;
    setChartData(chart, align(drawn.map((t) => series.get(t.run_id))));
    showFilter();
  }
  function showFilter() {
    // The chart's trials: `trials` may have grown since, while their series are on their way.
    const shown = drawn.filter((t) => !keep || keep.has(t.run_id));
    // One redraw for all the toggles, not one per trial.
    chart.batch(() => {
      drawn.forEach((t, i) => {
        const show = !keep || keep.has(t.run_id);
        if (chart.series[i + 1].show !== show) chart.setSeries(i + 1, { show });
      });
    });
    box.dataset.shown = String(shown.length);
    count.textContent = keep
      ? `${shown.length} of ${drawn.length} trials match the brushed ranges`
      : `${drawn.length} trials`;
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
