// Draws what is not a line over epochs (a sweep's scatter, bars, parallel coordinates) with
// Apache ECharts, as charts.js draws lines with uPlot: one function makes a chart.
//
// SVG by default, so the axis names and labels are text in the page (a reader's search and a
// screen reader find them); a canvas for charts of thousands of marks, which SVG would make
// thousands of elements of (ECharts' aria description still names what the chart shows).
// Tooltips drawn as rich text, never as HTML, so a name or a choice a person typed is never
// markup. A chart's container says `data-drawn="true"` once it has rendered.

import { PALETTE } from "./charts.js";

const FONT = "system-ui, -apple-system, 'Segoe UI', sans-serif";

// What every chart shares; each chart's own option is merged over it.
const BASE = {
  color: PALETTE,
  animation: false,
  aria: { enabled: true },
  textStyle: { fontFamily: FONT },
  tooltip: { renderMode: "richText", confine: true },
  grid: { left: 60, right: 20, top: 40, bottom: 40, containLabel: false },
};

// A chart in `container` (given a height by CSS or `height`); `option` as ECharts takes it.
// Returns the ECharts instance: setOption again to update it, `destroy()` to take it away.
export function makeEChart(container, option, { height = 260, renderer = "svg" } = {}) {
  if (!container.style.height) container.style.height = `${height}px`;
  const chart = echarts.init(container, null, { renderer });
  chart.on("finished", () => {
    container.dataset.drawn = "true";
  });
  chart.setOption({ ...BASE, ...option, tooltip: { ...BASE.tooltip, ...option.tooltip } });
  const resize = new ResizeObserver(() => chart.resize());
  resize.observe(container);
  chart.destroy = () => {
    resize.disconnect();
    chart.dispose();
  };
  return chart;
}
