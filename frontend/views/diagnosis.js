// "Why it diverged": a diverged run's diagnosis (what went non-finite, where, when, at which
// learning rate, the gradient norms just before, what to try), every piece as text.

import { el, formatNumber } from "../dom.js";

const WHAT = {
  loss: "The loss became non-finite (NaN or Inf)",
  gradient: "A gradient became non-finite (NaN or Inf)",
  weights: "A weight became non-finite (NaN or Inf)",
  activation: "An activation became non-finite (NaN or Inf)",
};
const SPARK = { width: 160, height: 32 };

// The gradient norms as a tiny line on a log scale; a non-finite one (null) as a red mark at
// the top, where the line would have gone off the chart.
function sparkline(values) {
  const canvas = el("canvas", { class: "sparkline", role: "img" });
  const ratio = window.devicePixelRatio || 1;
  canvas.width = SPARK.width * ratio;
  canvas.height = SPARK.height * ratio;
  canvas.style.width = `${SPARK.width}px`;
  canvas.style.height = `${SPARK.height}px`;
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  const logs = values.map((v) => (typeof v === "number" && v > 0 ? Math.log10(v) : null));
  const finite = logs.filter((v) => v !== null);
  const lo = Math.min(...finite);
  const span = Math.max(...finite) - lo || 1;
  const x = (i) => 2 + (i / Math.max(1, values.length - 1)) * (SPARK.width - 4);
  const y = (v) => SPARK.height - 3 - ((v - lo) / span) * (SPARK.height - 6);
  ctx.strokeStyle = "#2563eb";
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  let drawing = false;
  logs.forEach((v, i) => {
    if (v === null) {
      drawing = false;
      return;
    }
    if (drawing) ctx.lineTo(x(i), y(v));
    else ctx.moveTo(x(i), y(v));
    drawing = true;
  });
  ctx.stroke();
  ctx.fillStyle = "#e11d48";
  values.forEach((v, i) => {
    if (typeof v !== "number" || !Number.isFinite(v)) ctx.fillRect(x(i) - 1.5, 1, 3, 6);
  });
  return canvas;
}

const fact = (term, ...value) => [el("dt", { text: term }), el("dd", {}, ...value)];

// The panel for `diagnosis` (the Run's field), or null when there is none.
export function diagnosisPanel(diagnosis) {
  if (!diagnosis) return null;
  const d = diagnosis;
  const norms = Array.isArray(d.recent_grad_norms) ? d.recent_grad_norms : [];
  const normsText = norms.length ? norms.map((v) => formatNumber(v, 3)).join(" → ") : "none logged";
  const when = [
    d.epoch !== null && d.epoch !== undefined ? `epoch ${d.epoch}` : null,
    d.step !== null && d.step !== undefined ? `step ${d.step}` : null,
  ].filter(Boolean);
  const suggestions = Array.isArray(d.suggestions) ? d.suggestions : [];
  return el(
    "section",
    { class: "diagnosis", id: "diagnosis", "aria-labelledby": "diagnosis-title" },
    el("h2", { id: "diagnosis-title", text: "Why it diverged" }),
    el("p", { class: "diagnosis-what", text: WHAT[d.what] || `${d.what} became non-finite` }),
    d.detail ? el("p", { class: "diagnosis-detail", text: d.detail }) : null,
    el(
      "dl",
      { class: "facts" },
      fact("Where", el("code", { text: d.where ?? "–" })),
      fact("When", when.join(", ") || "–"),
      fact("Learning rate", formatNumber(d.lr)),
      fact(
        "Gradient norms before",
        norms.some((v) => typeof v === "number" && v > 0) ? sparkline(norms) : null,
        el("small", { class: "grad-norms", text: normsText }),
      ),
    ),
    suggestions.length ? el("h3", { text: "What to try" }) : null,
    suggestions.length
      ? el(
          "ul",
          { class: "suggestions" },
          suggestions.map((s) => el("li", { text: s })),
        )
      : null,
  );
}
