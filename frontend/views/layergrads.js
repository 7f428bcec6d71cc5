// A run's gradient norm per parameter (the `layer_grad_norm/<name>` step metrics) as a heatmap:
// a row per parameter, a column per logged step, colour = log10 of the norm; hovering a cell
// reads it. Hidden while the run has no such metric.

import { el, formatNumber } from "../dom.js";
import { cellAt, drawHeatmap, heatmapGrid, NON_FINITE, STOPS } from "../heatmap.js";

export const LAYER_PREFIX = "layer_grad_norm/";
export const isLayerKey = (key) => key.startsWith(LAYER_PREFIX);

const ROW_HEIGHT = 16; // CSS pixels; matches .heatmap-labels div in insight.css
const HINT =
  "Hover a cell to read it. Dark: a small norm (the layer learns slowly); bright: a large one; red: not finite.";
// "net.10.weight" after "net.2.weight": the model's order for numbered layers.
const natural = new Intl.Collator(undefined, { numeric: true }).compare;

export function layerGrads() {
  const labels = el("div", { class: "heatmap-labels" });
  const canvas = el("canvas", { class: "heatmap-canvas", role: "img" });
  const plot = el("div", { class: "heatmap-plot" }, canvas);
  const readout = el("div", { class: "heatmap-readout", id: "layer-grads-readout", text: HINT });
  const low = el("span");
  const high = el("span");
  const gradient = `linear-gradient(to right, ${STOPS.join(", ")})`;
  const scale = el(
    "div",
    { class: "heatmap-scale" },
    low,
    el("span", { class: "heatmap-bar", style: `background:${gradient}` }),
    high,
    el("span", { class: "swatch", style: `background:${NON_FINITE};margin-left:1rem` }),
    "not finite",
  );
  const node = el(
    "section",
    { class: "card", id: "layer-grads", hidden: true },
    el("h2", { text: "Gradient norm per layer" }),
    el("div", { class: "heatmap" }, labels, plot),
    scale,
    readout,
  );
  let grid = null;
  let names = [];
  let size = { width: 0, rowHeight: ROW_HEIGHT };

  function draw() {
    if (!grid) return;
    size = { width: Math.max(120, plot.clientWidth || 480), rowHeight: ROW_HEIGHT };
    drawHeatmap(canvas, grid, size);
  }
  // `store`: the run's SeriesStore; reads every layer_grad_norm key in it.
  function update(store) {
    const keys = store.keys().filter(isLayerKey).sort(natural);
    node.hidden = !keys.length;
    if (!keys.length) return;
    const next = keys.map((k) => k.slice(LAYER_PREFIX.length));
    if (next.join("\n") !== names.join("\n")) {
      names = next;
      labels.replaceChildren(...names.map((name) => el("div", { title: name, text: name })));
      canvas.setAttribute("aria-label", `gradient norm per step of ${names.join(", ")}`);
    }
    grid = heatmapGrid(keys.map((k) => store.get(k)));
    low.textContent = grid.lo === null ? "–" : formatNumber(10 ** grid.lo, 2);
    high.textContent = grid.hi === null ? "–" : formatNumber(10 ** grid.hi, 2);
    draw();
  }
  // Live points arrive in bursts: read them at most once a frame.
  let pending = false;
  function redraw(store) {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      update(store);
    });
  }
  canvas.addEventListener("mousemove", (event) => {
    const at = grid && cellAt(grid, size, event.offsetX, event.offsetY);
    if (!at) return;
    const v = grid.rows[at.row][at.col];
    const value = v === undefined ? "no point" : v === null ? "not finite" : formatNumber(v);
    readout.textContent = `${names[at.row]} · step ${grid.xs[at.col]} · gradient norm ${value}`;
  });
  canvas.addEventListener("mouseleave", () => {
    readout.textContent = HINT;
  });
  window.addEventListener("resize", draw);
  const destroy = () => window.removeEventListener("resize", draw);
  return { node, update, redraw, destroy };
}
