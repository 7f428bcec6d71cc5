// "Try it": a small form that sends rows to a checkpoint's predict and shows the answer. The
// digits data set gets an 8×8 grid to draw on; every other one a JSON box of raw rows.

import { api } from "../api.js";
import { el, formatNumber } from "../dom.js";

const INK = 16; // digits' pixels run 0..16
const SIDE = 8;

// An 8×8 grid of cells painted by dragging (the right button, or Shift, erases).
function digitGrid() {
  const pixels = new Array(SIDE * SIDE).fill(0);
  let painting = null;
  const cells = pixels.map((_, i) =>
    el("div", {
      class: "pixel",
      "data-pixel": i,
      onpointerdown: (event) => {
        event.preventDefault();
        painting = event.button === 2 || event.shiftKey ? 0 : INK;
        paint(i);
      },
      onpointerenter: () => {
        if (painting !== null) paint(i);
      },
    }),
  );
  function paint(i) {
    pixels[i] = painting;
    cells[i].classList.toggle("on", painting > 0);
  }
  const grid = el("div", {
    class: "digit-grid",
    role: "img",
    "aria-label": "8 by 8 drawing grid",
    oncontextmenu: (event) => event.preventDefault(),
  });
  grid.append(...cells);
  const stop = () => {
    painting = null;
  };
  window.addEventListener("pointerup", stop);
  return {
    node: grid,
    rows: () => [pixels.slice()],
    clear: () => {
      pixels.fill(0);
      for (const cell of cells) cell.classList.remove("on");
    },
    dispose: () => window.removeEventListener("pointerup", stop),
  };
}

// An empty box whose placeholder says what a row is: the width is the data set's, which the
// leaderboard row does not carry (a row of the wrong width is answered with the right one).
function jsonRows(dataset) {
  const box = el("textarea", {
    class: "rows-input",
    rows: 5,
    spellcheck: false,
    "aria-label": "Input rows as JSON",
    placeholder:
      `[[…], […]]: one list per row, one value per feature of ${dataset || "the data set"}` +
      " (or objects by column name)",
  });
  return {
    node: box,
    rows: () => parseRows(box.value),
    clear: () => {
      box.value = "";
    },
    dispose: () => {},
  };
}

function answerView(answer) {
  const lines = answer.predictions.map((prediction, i) => {
    const probabilities = answer.probabilities?.[i];
    if (!probabilities) return el("li", { text: `Prediction: ${formatNumber(prediction)}` });
    const top = probabilities
      .map((p, k) => [k, p])
      .sort((a, b) => b[1] - a[1])
      .slice(0, 3)
      .map(([k, p]) => `${k}: ${(p * 100).toFixed(1)}%`)
      .join(", ");
    return el("li", {}, el("strong", { text: `Prediction: ${prediction}` }), ` (${top})`);
  });
  return el("ol", { class: "predictions" }, lines);
}

// The panel for one leaderboard row; returns { node, dispose }.
export function tryItPanel(row) {
  const input = row.dataset === "digits" ? digitGrid() : jsonRows(row.dataset);
  const result = el("div", { class: "try-result", "aria-live": "polite" });
  const predict = el("button", {
    class: "primary",
    text: "Predict",
    onclick: async () => {
      predict.disabled = true;
      try {
        const answer = await api.predict(row.run_id, { inputs: input.rows(), checkpoint: row.id });
        result.replaceChildren(answerView(answer));
      } catch (error) {
        result.replaceChildren(el("p", { class: "error", role: "alert", text: error.message }));
      } finally {
        predict.disabled = false;
      }
    },
  });
  const node = el(
    "section",
    { class: "card try-it", id: "try-it" },
    el("h2", { text: `Try run ${row.run_id} (${row.run_name}), ${row.id}` }),
    row.dataset === "digits"
      ? el("p", { class: "hint", text: "Draw a digit: drag to paint, right-drag to erase." })
      : el("p", { class: "hint", text: "Raw rows as JSON: numbers, or objects by column." }),
    el(
      "div",
      { class: "try-body" },
      input.node,
      el(
        "div",
        { class: "try-actions" },
        predict,
        el("button", { text: "Clear", onclick: () => input.clear() }),
      ),
      result,
    ),
  );
  return { node, dispose: input.dispose };
}

// The JSON box may end with `//` comment lines (the example's help); they are dropped.
function parseRows(text) {
  const json = text
    .split("\n")
    .filter((line) => !line.trim().startsWith("//"))
    .join("\n");
  if (!json.trim()) throw new Error("give a JSON list of rows, e.g. [[1, 2, 3]]");
  const rows = JSON.parse(json);
  if (!Array.isArray(rows)) throw new Error("give a JSON list of rows");
  return rows;
}
