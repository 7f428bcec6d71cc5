// Draws a heatmap on a canvas: a row per series, a column per x value, colour = log10 of the
// value. A non-finite value (null from the server) is drawn in its own colour; a step a row has
// no point for stays blank.

// Viridis, from dark (small) to yellow (large): ordered by lightness, so it reads in greyscale.
export const STOPS = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"];
export const NON_FINITE = "#e11d48";
const rgb = STOPS.map((hex) => [1, 3, 5].map((i) => Number.parseInt(hex.slice(i, i + 2), 16)));

// The colour at `t` in [0, 1] along the stops.
export function colourAt(t) {
  const x = Math.min(1, Math.max(0, t)) * (rgb.length - 1);
  const i = Math.min(rgb.length - 2, Math.floor(x));
  const f = x - i;
  const [r, g, b] = rgb[i].map((c, k) => Math.round(c + (rgb[i + 1][k] - c) * f));
  return `rgb(${r},${g},${b})`;
}

// Several {steps, values} series as a grid: `xs` (the union of steps), `rows` (per series, per
// x: the value, null for non-finite, undefined for none), and the log10 range of the positive
// values (`lo`, `hi`; both null when there is none).
export function heatmapGrid(seriesList) {
  const xs = [...new Set(seriesList.flatMap((s) => s.steps))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  let lo = Infinity;
  let hi = -Infinity;
  const rows = seriesList.map((s) => {
    const row = new Array(xs.length).fill(undefined);
    s.steps.forEach((x, i) => {
      const v = s.values[i];
      row[index.get(x)] = v;
      if (v > 0) {
        lo = Math.min(lo, Math.log10(v));
        hi = Math.max(hi, Math.log10(v));
      }
    });
    return row;
  });
  return lo === Infinity ? { xs, rows, lo: null, hi: null } : { xs, rows, lo, hi };
}

// Paint `grid` onto `canvas` at `width` CSS pixels, `rowHeight` CSS pixels a row.
export function drawHeatmap(canvas, grid, { width, rowHeight }) {
  const ratio = window.devicePixelRatio || 1;
  const height = grid.rows.length * rowHeight;
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, width, height);
  const cell = width / Math.max(1, grid.xs.length);
  const span = grid.hi - grid.lo || 1;
  grid.rows.forEach((row, r) => {
    row.forEach((v, c) => {
      if (v === undefined) return;
      // A zero norm (a layer that got no gradient) takes the smallest colour.
      ctx.fillStyle =
        v === null ? NON_FINITE : colourAt(v > 0 ? (Math.log10(v) - grid.lo) / span : 0);
      // Cells overlap by a pixel's fraction so no seam shows between columns.
      ctx.fillRect(c * cell, r * rowHeight, cell + 0.5, rowHeight - 1);
    });
  });
}

// The cell under a point (CSS pixels from the canvas' top left): {row, col}, or null.
export function cellAt(grid, { width, rowHeight }, x, y) {
  const col = Math.floor((x / width) * grid.xs.length);
  const row = Math.floor(y / rowHeight);
  if (row < 0 || row >= grid.rows.length || col < 0 || col >= grid.xs.length) return null;
  return { row, col };
}
