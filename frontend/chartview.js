// Charts a learner can read, shared by the run page and the compare view: a toolbar (smoothing,
// log scale, x axis) and a grid of line charts redrawn under its settings.
//
// Log scale: until the person ticks or clears the box, each chart keeps its own default (linear,
// or log for a chart marked `autoLog` whose values span more than a decade, such as the learning
// rate under a schedule); the box shows "mixed" while some charts are on a log scale and some not.

import { align, isLogChart, makeChart, resizeCharts, setChartData, smooth } from "./charts.js";
import { el } from "./dom.js";

const DECADE = 10;

// A log axis has no place for 0 or below (an lr warming up from 0, an accuracy of 0): gaps.
const positiveOnly = (column) => column.map((v) => (v > 0 ? v : null));

// Whether the positive values of `columns` (arrays, nulls allowed) span more than a decade.
export function spansDecade(columns) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const column of columns) {
    for (const v of column) {
      if (v > 0) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
    }
  }
  return hi / lo > DECADE;
}

// The toolbar; `view` holds its settings, `onChange(what)` hears "smoothing", "log" or "x".
function toolbar(view, { xOptions, hint }, onChange) {
  const smoothing = el("input", {
    type: "range",
    min: 0,
    max: 0.99,
    step: 0.01,
    value: 0,
    id: "smoothing",
    "aria-label": "Smoothing",
  });
  const logScale = el("input", { type: "checkbox", id: "log-scale" });
  const xAxis = el(
    "select",
    { id: "x-axis", "aria-label": "X axis" },
    xOptions.map((o) => el("option", { value: o.value, text: o.label })),
  );
  smoothing.addEventListener("input", () => {
    view.smoothing = Number(smoothing.value);
    onChange("smoothing");
  });
  logScale.addEventListener("change", () => {
    view.log = logScale.checked;
    onChange("log");
  });
  xAxis.addEventListener("change", () => {
    view.x = xAxis.value;
    onChange("x");
  });
  const node = el(
    "div",
    { class: "toolbar chart-controls" },
    el("label", { for: "smoothing", text: "Smoothing" }),
    smoothing,
    el("label", {}, logScale, " Log scale"),
    el("label", { for: "x-axis", text: "X axis" }),
    xAxis,
    el("small", { text: hint }),
  );
  const showMixed = (mixed) => {
    logScale.indeterminate = view.log === null && mixed;
  };
  return { node, showMixed };
}

// A toolbar and the charts of `defs` ({id, title, autoLog}) in `grid`.
//   series(def): the def's series ({steps, values, timestamps} or undefined), one per line;
//   chartOptions(def, view): makeChart's options beyond title and scale (labels, xLabel, onZoom);
//   origins: per line, the time its wall-clock x counts from (0, or absent: the clock itself);
//   xOptions: [{value, label}] of the x-axis select; the value "step" plots steps, any other
//   plots time; onChange(what): hears a setting change before the charts follow it.
export function chartView(
  grid,
  defs,
  { series, chartOptions, origins = [], xOptions, hint, onChange },
) {
  const view = { smoothing: 0, log: null, x: xOptions[0].value };
  let entries = [];

  function columns(def) {
    const list = series(def);
    if (view.x === "step") return align(list);
    const byTime = (s, i) =>
      s && { steps: s.timestamps.map((t) => t - (origins[i] || 0)), values: s.values };
    return align(list.map(byTime));
  }
  function make(entry, log) {
    entry.chart?.destroy();
    entry.chart = makeChart(entry.box, {
      title: entry.def.title,
      logScale: log,
      ...chartOptions(entry.def, view),
    });
  }
  function build() {
    for (const { chart } of entries) chart.destroy();
    grid.replaceChildren();
    entries = defs.map((def) => {
      const box = el("div", { class: "chart", "data-chart": def.id });
      grid.append(box);
      return { def, box, chart: null };
    });
    draw();
  }
  // uPlot fixes a scale's distribution when it makes a chart: a chart whose scale must change
  // (its data now spans a decade, say) is made again.
  function draw() {
    let anyLog = false;
    for (const entry of entries) {
      const [xs, ...ys] = columns(entry.def);
      const log = view.log ?? (!!entry.def.autoLog && spansDecade(ys));
      if (!entry.chart || isLogChart(entry.chart) !== log) make(entry, log);
      anyLog ||= log;
      const shown = ys.map((v) => smooth(v, view.smoothing));
      setChartData(entry.chart, [xs, ...(log ? shown.map(positiveOnly) : shown)]);
    }
    bar.showMixed(anyLog && entries.some((e) => !isLogChart(e.chart)));
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
  const bar = toolbar(view, { xOptions, hint }, (what) => {
    onChange?.(what);
    if (what === "smoothing") draw();
    else build();
  });
  const onResize = () => {
    resizeCharts(
      entries.map((e) => e.chart),
      grid.firstChild || grid,
    );
  };
  window.addEventListener("resize", onResize);
  function destroy() {
    window.removeEventListener("resize", onResize);
    for (const { chart } of entries) chart.destroy();
    entries = [];
  }
  return { view, toolbar: bar.node, build, draw, redraw, destroy };
}
