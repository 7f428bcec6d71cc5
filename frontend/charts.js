// Draws: one function makes a chart; series are columnar arrays handed to uPlot's setData.

export const PALETTE = [
  "#2563eb",
  "#dc2626",
  "#16a34a",
  "#9333ea",
  "#ea580c",
  "#0891b2",
  "#ca8a04",
  "#db2777",
  "#4f46e5",
  "#65a30d",
  "#0d9488",
  "#b91c1c",
  "#7c3aed",
  "#c2410c",
  "#0369a1",
  "#a16207",
  "#be185d",
  "#15803d",
  "#6d28d9",
  "#475569",
];

// Exponential moving average that skips nulls (a NaN stays a gap, never a made-up value).
export function smooth(values, weight) {
  if (!weight) return values;
  let last = null;
  return values.map((v) => {
    if (v === null || v === undefined) return null;
    last = last === null ? v : last * weight + (1 - weight) * v;
    return last;
  });
}

// Join several {steps, values} series on the union of their x values (uPlot wants one x array).
export function align(seriesList) {
  const xs = [...new Set(seriesList.flatMap((s) => (s ? s.steps : [])))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const columns = seriesList.map((s) => {
    const column = new Array(xs.length).fill(null);
    if (s)
      s.steps.forEach((x, i) => {
        column[index.get(x)] = s.values[i];
      });
    return column;
  });
  return [xs, ...columns];
}

// uPlot's y axis is 50px wide by default, which cuts "10,000" to "0,000": size it instead to
// its widest tick label. uPlot calls this again when the labels change (cycleNum counts the
// calls of one layout pass; the sizes settle after the first, so later ones keep it).
const Y_AXIS_MIN_SIZE = 50;
let measure = null; // a canvas of our own: uPlot caches its context's font between draws
function yAxisSize(self, values, axisIdx, cycleNum) {
  const axis = self.axes[axisIdx];
  if (!values || cycleNum > 1) return axis._size ?? Y_AXIS_MIN_SIZE;
  measure ??= document.createElement("canvas").getContext("2d");
  // axis.font: [font at device pixels, its size in device pixels, its size in CSS pixels]
  const [font, devicePx, cssPx] = axis.font;
  measure.font = font;
  const widest = Math.max(0, ...values.map((v) => measure.measureText(String(v ?? "")).width));
  const ticks = axis.ticks.show ? axis.ticks.size : 0;
  return Math.ceil(Math.max(Y_AXIS_MIN_SIZE, ticks + axis.gap + (widest * cssPx) / devicePx));
}

// Tick labels of a log axis: uPlot's own write 1e-7 as "0.0000001" (or "0" once rounded).
// Ticks it leaves out come as null.
const logTicks = (_u, splits) =>
  splits.map((v) => (v === null ? null : v >= 1e-3 && v < 1e4 ? String(v) : v.toExponential(0)));

// Dashed vertical lines across the plot at `marks` ({x, label, color}), each labelled at the top
// (a second label one line lower, so two close marks stay readable).
function drawMarks(u, marks) {
  const { ctx } = u;
  const { left, top, width, height } = u.bbox;
  const px = uPlot.pxRatio || 1;
  ctx.save();
  ctx.font = `${11 * px}px system-ui, sans-serif`;
  ctx.textBaseline = "alphabetic";
  ctx.lineWidth = px;
  ctx.setLineDash([4 * px, 3 * px]);
  marks.forEach((mark, i) => {
    if (mark.x === null || mark.x === undefined) return;
    const x = Math.round(u.valToPos(mark.x, "x", true));
    if (x < left || x > left + width) return;
    ctx.strokeStyle = mark.color;
    ctx.fillStyle = mark.color;
    ctx.beginPath();
    ctx.moveTo(x, top);
    ctx.lineTo(x, top + height);
    ctx.stroke();
    const room = left + width - x > ctx.measureText(mark.label).width + 8 * px;
    ctx.textAlign = room ? "left" : "right";
    ctx.fillText(mark.label, x + (room ? 4 : -4) * px, top + (12 + 13 * i) * px);
  });
  ctx.restore();
}

// A line chart in `container`. `onZoom(xMin, xMax)` fires after a drag-zoom (null, null on reset).
// `logScale`/`logX`: that axis on a log10 scale (its values must be positive); `marks`: vertical
// lines at given x values (drawMarks); `colors`: a colour per label (PALETTE's, in order, by
// default).
export function makeChart(
  container,
  {
    title,
    labels,
    xLabel = "epoch",
    logScale = false,
    logX = false,
    marks = [],
    colors = PALETTE,
    onZoom = null,
    height = 220,
    legend = true,
  },
) {
  const width = Math.max(280, container.clientWidth || 480);
  const opts = {
    title,
    width,
    height,
    scales: {
      x: { time: xLabel === "time", distr: logX ? 3 : 1 },
      y: { distr: logScale ? 3 : 1 },
    },
    axes: [
      { label: xLabel === "time" ? "" : xLabel, ...(logX ? { values: logTicks } : {}) },
      { size: yAxisSize, ...(logScale ? { values: logTicks } : {}) },
    ],
    series: [
      { label: xLabel },
      ...labels.map((label, i) => ({
        label,
        stroke: colors[i % colors.length],
        width: 1.5,
        spanGaps: true,
        points: { show: false },
      })),
    ],
    cursor: { drag: { x: true, y: false } },
    hooks: marks.length ? { draw: [(u) => drawMarks(u, marks)] } : {},
  };
  if (!legend) {
    // Hundreds of series: a legend row and a cursor dot each would be DOM to lay out on every
    // redraw and every mouse move.
    opts.legend = { show: false };
    opts.cursor.points = { show: false };
  }
  if (onZoom) {
    opts.hooks.setSelect = [
      (u) => {
        if (u.select.width < 2) return;
        const lo = u.posToVal(u.select.left, "x");
        const hi = u.posToVal(u.select.left + u.select.width, "x");
        u.setSelect({ left: 0, width: 0, top: 0, height: 0 }, false);
        onZoom(Math.floor(lo), Math.ceil(hi));
      },
    ];
    opts.cursor.drag.setScale = false;
  }
  const empty = [[], ...labels.map(() => [])];
  const chart = new uPlot(opts, empty, container);
  chart.root.dataset.points = "0";
  chart.root.dataset.log = String(logScale);
  if (onZoom) chart.over.addEventListener("dblclick", () => onZoom(null, null));
  return chart;
}

export const isLogChart = (chart) => chart.scales.y.distr === 3;

export function setChartData(chart, data) {
  chart.setData(data);
  chart.root.dataset.points = String(data[0].length);
}

export function resizeCharts(charts, container) {
  const width = Math.max(280, container.clientWidth || 480);
  for (const chart of charts) chart.setSize({ width, height: chart.height });
}
