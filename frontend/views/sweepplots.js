// A sweep's ECharts panels: the objective by trial, the parameters' importance (bars and the same
// as a list), parallel coordinates whose brushed axis ranges choose the trials the curves show,
// and a slice (objective against the parameter) per parameter.

import { el, formatNumber } from "../dom.js";
import { makeEChart } from "../echart.js";
import {
  importanceOption,
  objectiveOption,
  PARALLEL_STEPWISE,
  parallelOption,
  sliceOption,
  trialsInOrder,
} from "../sweepcharts.js";

const NO_IMPORTANCE = "Importance shows once a few trials have finished.";
// A sweep of more trials than this draws its per-trial charts on a canvas (see echart.js).
const SVG_TRIALS = 200;
const SLICE_HEIGHT = 220;

// `onBrush(runIds)`: the run ids of the trials inside every brushed range, or null when no
// axis is brushed. Call `show(sweep)` to draw (again); `showImportance(importances)` likewise.
// `drawn`: settles once the parallel coordinates have first drawn all their lines.
export function sweepPlots(sweep, { onBrush }) {
  const paths = Object.keys(sweep.space);
  const boxes = {
    objective: el("div", { class: "echart", id: "objective-chart", "data-chart": "objective" }),
    importance: el("div", {
      class: "echart",
      id: "importance-chart",
      "data-chart": "importance",
      hidden: true,
    }),
    parallel: el("div", { class: "echart", id: "parallel-chart", "data-chart": "parallel" }),
  };
  const importanceList = el("ol", { class: "importance-list", id: "importance-list" });
  const importanceNote = el("p", { class: "muted", id: "importance-note", text: NO_IMPORTANCE });
  const slices = paths.map((path) =>
    el("div", { class: "echart slice", "data-chart": "slice", "data-param": path }),
  );
  for (const box of slices) box.style.height = `${SLICE_HEIGHT}px`; // its place before its chart
  const clear = el("button", { type: "button", id: "clear-brush", text: "Clear brushed ranges" });
  const node = el(
    "section",
    { class: "card" },
    el(
      "div",
      { class: "sweep-charts" },
      boxes.objective,
      el("div", {}, boxes.importance, importanceNote, importanceList),
    ),
    el(
      "div",
      { class: "toolbar brush-bar" },
      el("small", {
        class: "muted",
        text: "Drag along an axis to brush a range; the curves below keep the trials inside it.",
      }),
      clear,
    ),
    boxes.parallel,
    el("h2", { text: "Slices" }),
    el("div", { class: "slices", id: "slices" }, slices),
  );

  let charts = null;
  let firstDrawn;
  const drawn = new Promise((resolve) => {
    firstDrawn = resolve;
  });
  let latest = null; // the sweep last shown
  let trials = [];
  let importances = {};
  // The parallel series' data follows `trials`: a raw data index is an index into it. (The
  // series' getRawIndicesByActiveState is what ECharts offers an `axisareaselected` listener.)
  function brushed() {
    const series = charts.parallel.getModel().getSeries()[0];
    if (!series) return null;
    const total = trials.length;
    if (series.getRawIndicesByActiveState("normal").length === total) return null;
    return new Set(series.getRawIndicesByActiveState("active").map((i) => trials[i].run_id));
  }
  // Charts are made once the section is in the page (ECharts measures its box).
  function make(current) {
    latest = current;
    trials = trialsInOrder(current);
    const renderer = current.n_trials > SVG_TRIALS ? "canvas" : "svg";
    charts = {
      objective: makeEChart(boxes.objective, objectiveOption(current), { renderer }),
      importance: null, // made with the first importances: an empty chart says nothing
      parallel: null,
      slices: slices.map(() => null), // each made once scrolled near
    };
    // Importance before the parallel coordinates, whose lines take longer to draw.
    drawImportance();
    const option = parallelOption(current, trials, { stepwise: false });
    charts.parallel = makeEChart(boxes.parallel, option, { height: 340, renderer });
    // A sweep's slices sit below the fold: drawing them waits until they come near it.
    const near = new IntersectionObserver(
      (entries) => {
        for (const entry of entries) {
          if (!entry.isIntersecting || !charts) continue;
          const i = slices.indexOf(entry.target);
          near.unobserve(entry.target);
          charts.slices[i] = makeEChart(entry.target, sliceOption(latest, paths[i]), {
            renderer,
          });
        }
      },
      { rootMargin: "200px" },
    );
    for (const box of slices) near.observe(box);
    charts.near = near;
    charts.parallel.on("axisareaselected", () => onBrush(brushed()));
    // Drawn whole the first time; re-renders (a brush's, a new trial's) in chunks from then on,
    // where there are enough lines for chunks (a setOption renders again).
    const drawnOnce = () => {
      charts.parallel.off("finished", drawnOnce);
      if (trials.length >= PARALLEL_STEPWISE.progressiveThreshold) {
        charts.parallel.setOption({ series: [PARALLEL_STEPWISE] });
      }
      firstDrawn();
    };
    charts.parallel.on("finished", drawnOnce);
    clear.addEventListener("click", () => {
      paths.forEach((_, i) => {
        charts.parallel.dispatchAction({
          type: "axisAreaSelect",
          parallelAxisId: `param-${i}`,
          intervals: [],
        });
      });
      charts.parallel.dispatchAction({
        type: "axisAreaSelect",
        parallelAxisId: "objective",
        intervals: [],
      });
    });
  }
  function show(current) {
    if (!charts) {
      make(current);
      return;
    }
    latest = current;
    trials = trialsInOrder(current);
    charts.objective.setOption(objectiveOption(current));
    // The axes keep their brushed ranges (same ids); new trials may fall inside them.
    charts.parallel.setOption(parallelOption(current, trials));
    charts.slices.forEach((chart, i) => {
      chart?.setOption(sliceOption(current, paths[i]));
    });
    onBrush(brushed());
  }
  function showImportance(next) {
    importances = next;
    const entries = Object.entries(importances).sort((a, b) => b[1] - a[1]);
    importanceNote.hidden = entries.length > 0;
    importanceList.replaceChildren(
      ...entries.map(([path, value]) =>
        el("li", { "data-param": path }, el("span", { text: path }), ` ${formatNumber(value, 2)}`),
      ),
    );
    if (charts) drawImportance();
  }
  function drawImportance() {
    if (!Object.keys(importances).length) return;
    boxes.importance.hidden = false;
    if (charts.importance) charts.importance.setOption(importanceOption(importances));
    else charts.importance = makeEChart(boxes.importance, importanceOption(importances));
  }
  function destroy() {
    if (!charts) return;
    charts.near.disconnect();
    for (const chart of [charts.objective, charts.importance, charts.parallel, ...charts.slices]) {
      chart?.destroy();
    }
    charts = null;
  }
  return { node, drawn, show, showImportance, destroy };
}
