// What a sanity-check run found, shown alike in the form and on the run's page: the
// learning-rate range test's loss curve, its suggestions and a button to use one; or the
// preflight's verdict, numbers and loss curve. While the run waits or trains, its status.

import { makeChart, PALETTE, setChartData } from "../charts.js";
import { spansDecade } from "../chartview.js";
import { badge, el, formatNumber } from "../dom.js";
import { FINAL_STATUSES, Status } from "../status.js";

export const CHECK_KINDS = {
  lr_find: "Learning-rate range test",
  preflight: "Preflight: overfit one batch",
};
const MARKS = [
  { key: "steepest", label: "steepest", color: PALETTE[1] },
  { key: "minimum_over_10", label: "minimum / 10", color: PALETTE[2] },
];
const swatch = (color) => el("span", { class: "swatch", style: `background:${color}` });

// The range test: smoothed loss against lr (log x), the two suggestions as marked lines, the
// suggested lr with "Use this learning rate" (`onUseLr(lr)`), or the summary's message when
// the loss never fell. Returns the chart.
function lrFindResult(box, summary, onUseLr) {
  const curve = summary.lr_find || { lrs: [], losses: [] };
  const marks = MARKS.map((m) => ({ ...m, x: summary.suggestions?.[m.key] ?? null }));
  const chartBox = el("div", { class: "chart", "data-chart": "lr_find" });
  const suggested = summary.suggested_lr;
  box.append(
    chartBox,
    el(
      "ul",
      { class: "legend", id: "lr-find-marks" },
      el("li", {}, swatch(PALETTE[0]), "smoothed loss"),
      marks.map((m) =>
        el("li", {}, swatch(m.color), `${m.label}: ${m.x === null ? "none" : formatNumber(m.x)}`),
      ),
    ),
    suggested === null || suggested === undefined
      ? null
      : el(
          "p",
          { class: "suggestion" },
          "Suggested learning rate: ",
          el("strong", { id: "suggested-lr", text: formatNumber(suggested) }),
          " ",
          el("button", {
            type: "button",
            class: "primary",
            text: "Use this learning rate",
            onclick: () => onUseLr(suggested),
          }),
        ),
    summary.message ? el("p", { class: "check-message", text: summary.message }) : null,
  );
  // A log axis has no place for lr <= 0; the lrs rise, as uPlot wants its x.
  const xs = [];
  const ys = [];
  curve.lrs.forEach((lr, i) => {
    if (lr > 0) {
      xs.push(lr);
      ys.push(curve.losses[i] ?? null);
    }
  });
  const chart = makeChart(chartBox, {
    title: "Loss against learning rate (smoothed)",
    labels: ["smoothed loss"],
    xLabel: "learning rate",
    logX: true,
    marks,
    height: 240,
  });
  setChartData(chart, [xs, ys]);
  return chart;
}

// The preflight: its verdict, what it measured, its message, and the loss per step (log y when
// it fell by more than a decade, as it does when the model can learn). Returns the chart.
function preflightResult(box, summary) {
  const p = summary.preflight || {};
  const chartBox = el("div", { class: "chart", "data-chart": "preflight" });
  const facts = [
    `start loss ${formatNumber(p.start_loss)}`,
    `end loss ${formatNumber(p.end_loss)}`,
    `${p.steps ?? "–"} steps`,
    `threshold ${formatNumber(p.threshold)}`,
  ];
  box.append(
    el("p", {
      class: `verdict ${p.passed ? "verdict-pass" : "verdict-fail"}`,
      id: "preflight-verdict",
      text: p.passed ? "Passed" : "Failed",
    }),
    p.message ? el("p", { class: "check-message", text: p.message }) : null,
    el("p", { class: "check-facts", text: facts.join(" · ") }),
    chartBox,
  );
  const losses = p.losses || [];
  const chart = makeChart(chartBox, {
    title: "Loss on one batch",
    labels: ["loss"],
    xLabel: "step",
    logScale: spansDecade([losses]),
    height: 200,
  });
  setChartData(chart, [losses.map((_, i) => i + 1), losses]);
  return chart;
}

// A panel that follows a check run: `show(run)` with each new read of it. `onUseLr(lr)`: what
// "Use this learning rate" does; `link`: whether the title links to the run's page.
export function checkPanel({ id, onUseLr, link = false }) {
  const node = el("div", { class: "check-result", id, "aria-live": "polite" });
  let chart = null;
  let shown = "";
  function destroy() {
    chart?.destroy();
    chart = null;
  }
  function show(run) {
    // Reads of a final run repeat what is shown: its chart is not drawn again.
    const key = `${run.id} ${run.status}`;
    if (key === shown && FINAL_STATUSES.has(run.status)) return;
    shown = key;
    destroy();
    const name = CHECK_KINDS[run.kind] || run.kind;
    const runLink = link ? el("a", { href: `#/run/${run.id}`, text: `run ${run.id}` }) : null;
    node.replaceChildren(el("h3", {}, `${name} `, badge(run.status), " ", runLink));
    if (run.status === Status.completed) {
      const summary = run.summary || {};
      if (run.kind === "lr_find") chart = lrFindResult(node, summary, onUseLr);
      else chart = preflightResult(node, summary);
    } else if (FINAL_STATUSES.has(run.status)) {
      const error = run.error || `The check ended ${run.status}.`;
      node.append(el("p", { class: "error", role: "alert", text: error }));
    } else {
      const waiting = run.status === Status.queued ? "Waiting for a worker…" : "Running…";
      node.append(el("p", { class: "muted", text: waiting }));
    }
  }
  // The follower gave up waiting: say where to keep watching.
  function tooLong(run) {
    const where = el("a", { href: `#/run/${run.id}`, text: "its page" });
    node.append(el("p", { class: "muted" }, `Still ${run.status}; follow it on `, where, "."));
  }
  return { node, show, tooLong, destroy };
}
