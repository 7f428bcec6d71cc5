// A sweep's charts as ECharts options, built from the Sweep alone (pure functions, no DOM):
// the objective against the trial number with the best so far, the parameters' importance,
// parallel coordinates (one axis per parameter, then the objective), and one slice per parameter.

import { PALETTE } from "./charts.js";

const PRUNED = "#9ca3af";
const BEST = "#111827";
// Parallel coordinates of more trials than this are drawn in thin lines (half the pixels to
// raster) and, once drawn, re-rendered PARALLEL_CHUNK lines a frame after a brush: in a
// software-rendered browser 1,000 lines in one frame take 100-200 ms, during which the curves'
// re-filter cannot show. The first draw is whole: in chunks it would wait for a frame each,
// which a busy machine gives late.
const PARALLEL_PROGRESSIVE = 500;
const PARALLEL_CHUNK = 100;
export const PARALLEL_STEPWISE = {
  progressive: PARALLEL_CHUNK,
  progressiveThreshold: PARALLEL_PROGRESSIVE,
};

// The trials by number: the order of every chart's data, the curves' and the table's default.
export const trialsInOrder = (sweep) => [...sweep.trials].sort((a, b) => a.number - b.number);

// A trial's colour, the same in the parallel coordinates and the loss curves.
export const trialColor = (trial) => PALETTE[trial.number % PALETTE.length];

const better = (mode) => (mode === "max" ? (a, b) => a > b : (a, b) => a < b);

// An axis for one dimension of the space: its choices as categories, a log axis for a log
// float, else a linear one fitted to the values.
function axisFor(dimension) {
  if (dimension.type === "categorical") {
    return { type: "category", data: dimension.choices.map(String) };
  }
  if (dimension.log) return { type: "log", logBase: 10 };
  return { type: "value", scale: true, minInterval: dimension.type === "int" ? 1 : 0 };
}

// A parameter's value as its axis takes it ('-': ECharts' "no value").
function axisValue(dimension, value) {
  if (value === undefined) return "-";
  if (dimension.type === "categorical") return String(value); // a choice may be null
  return value ?? "-";
}

const hasValue = (trial) => trial.value !== null && trial.value !== undefined;

// The objective of each trial that has one, pruned trials apart, and the best so far as a step
// line over the trials that completed.
export function objectiveOption(sweep) {
  const { metric, mode } = sweep.objective;
  const trials = trialsInOrder(sweep).filter(hasValue);
  const isBetter = better(mode);
  let best = null;
  const bestSoFar = [];
  for (const t of trials) {
    if (t.status !== "completed") continue;
    if (best === null || isBetter(t.value, best)) best = t.value;
    bestSoFar.push([t.number, best]);
  }
  const point = (t) => [t.number, t.value];
  return {
    title: { text: `${metric} by trial`, textStyle: { fontSize: 13 } },
    legend: { top: 0, right: 10 },
    tooltip: { trigger: "item" },
    xAxis: { type: "value", name: "trial", minInterval: 1, nameLocation: "center", nameGap: 25 },
    yAxis: { type: "value", scale: true },
    series: [
      {
        name: "trial",
        type: "scatter",
        data: trials.filter((t) => t.status !== "pruned").map(point),
        itemStyle: { color: PALETTE[0] },
      },
      {
        name: "pruned",
        type: "scatter",
        data: trials.filter((t) => t.status === "pruned").map(point),
        itemStyle: { color: PRUNED },
      },
      {
        name: `best so far (${mode})`,
        type: "line",
        step: "end",
        data: bestSoFar,
        showSymbol: false,
        lineStyle: { color: BEST, width: 1.5 },
        itemStyle: { color: BEST },
      },
    ],
  };
}

// Bars of each parameter's importance (Optuna's evaluator), the largest on top.
export function importanceOption(importances) {
  const entries = Object.entries(importances).sort((a, b) => a[1] - b[1]);
  return {
    title: { text: "Parameter importance", textStyle: { fontSize: 13 } },
    tooltip: { trigger: "item" },
    grid: { left: 150, right: 30, top: 40, bottom: 30 },
    xAxis: { type: "value", max: 1 },
    yAxis: { type: "category", data: entries.map(([path]) => path) },
    series: [{ name: "importance", type: "bar", barMaxWidth: 28, data: entries.map(([, v]) => v) }],
  };
}

// One line per trial across the parameters' axes and the objective's. `trials` gives the
// data's order (a data index is an index into it); a trial with no value yet has none on the
// objective's axis. `stepwise`: drawn in chunks when there are many (PARALLEL_STEPWISE).
export function parallelOption(sweep, trials, { stepwise = true } = {}) {
  const paths = Object.keys(sweep.space);
  const axes = paths.map((path, i) => ({
    dim: i,
    id: `param-${i}`,
    name: path,
    ...axisFor(sweep.space[path]),
  }));
  axes.push({
    dim: paths.length,
    id: "objective",
    name: sweep.objective.metric,
    type: "value",
    scale: true,
  });
  // Plain value arrays, coloured through a visual map on an extra dimension (the trial's palette
  // index): an object per data item would make ECharts build a model per trial.
  const colorDim = axes.length;
  const data = trials.map((t) => [
    ...paths.map((path) => axisValue(sweep.space[path], t.params[path])),
    hasValue(t) ? t.value : "-",
    t.number % PALETTE.length,
  ]);
  return {
    tooltip: { trigger: "item", formatter: (p) => `trial ${trials[p.dataIndex].number}` },
    visualMap: {
      type: "piecewise",
      show: false,
      dimension: colorDim,
      seriesIndex: 0,
      pieces: PALETTE.map((color, i) => ({ value: i, color })),
    },
    title: { text: "Parallel coordinates", textStyle: { fontSize: 13 } },
    parallel: { left: 70, right: 90, top: 60, bottom: 30 },
    parallelAxis: axes.map((a) => ({
      ...a,
      nameTextStyle: { fontSize: 12 },
      axisLabel: { hideOverlap: true },
    })),
    series: [
      {
        name: "trials",
        type: "parallel",
        data,
        lineStyle: { width: trials.length > PARALLEL_PROGRESSIVE ? 1 : 2, opacity: 0.7 },
        inactiveOpacity: 0.08,
        activeOpacity: 1,
        ...(stepwise ? PARALLEL_STEPWISE : { progressive: 0 }),
      },
    ],
  };
}

// The objective against one parameter, over the trials that have a value.
export function sliceOption(sweep, path) {
  const dimension = sweep.space[path];
  const trials = trialsInOrder(sweep).filter(hasValue);
  return {
    title: { text: `${sweep.objective.metric} by ${path}`, textStyle: { fontSize: 12 } },
    tooltip: { trigger: "item" },
    grid: { left: 55, right: 15, top: 35, bottom: 30 },
    xAxis: axisFor(dimension),
    yAxis: { type: "value", scale: true },
    series: [
      {
        name: path,
        type: "scatter",
        data: trials.map((t) => [axisValue(dimension, t.params[path]), t.value]),
        // A colour function over plain arrays: an object per point makes a model per point.
        itemStyle: {
          color: ({ dataIndex }) => {
            const t = trials[dataIndex];
            return t.status === "pruned" ? PRUNED : trialColor(t);
          },
        },
      },
    ],
  };
}
