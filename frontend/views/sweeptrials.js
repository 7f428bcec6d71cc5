// A sweep's header (status, trials done, best value, Cancel, "Clone best into the run form") and
// its trials table: one row per trial with its parameters and objective, sortable by the
// objective, the best trial marked, a pruned trial saying when and against what it was stopped.

import { api } from "../api.js";
import { badge, el, formatNumber } from "../dom.js";
import { FINAL_STATUSES } from "../status.js";
import { trialsInOrder } from "../sweepcharts.js";

export const trialsDone = (sweep) => sweep.trials.filter((t) => FINAL_STATUSES.has(t.status));

// What a trial's last column says: why it stopped early, or why it failed.
function note(trial) {
  if (trial.status !== "pruned" || trial.pruned_epoch === null) return "";
  const against = trial.pruned_against;
  const vs = against === null || against === undefined ? "" : ` vs median ${formatNumber(against)}`;
  return `pruned at epoch ${trial.pruned_epoch} (${formatNumber(trial.value)}${vs})`;
}

// The header; `onChange(sweep)` gets the sweep the Cancel button's request returns.
export function sweepHeader(onChange) {
  const node = el("div", { class: "run-header", id: "sweep-header" });
  function render(sweep) {
    const { metric, mode } = sweep.objective;
    const buttons = [];
    if (sweep.status === "running") {
      const cancel = () => api.cancelSweep(sweep.id).then(onChange);
      buttons.push(el("button", { id: "cancel-sweep", text: "Cancel", onclick: cancel }));
    }
    if (sweep.best_run_id !== null && sweep.best_run_id !== undefined) {
      const clone = () => {
        location.hash = `#/new?clone=${sweep.best_run_id}`;
      };
      const text = "Clone best into the run form";
      buttons.push(el("button", { id: "clone-best", text, onclick: clone }));
    }
    node.replaceChildren(
      el("h1", { id: "sweep-name", text: sweep.name }),
      el(
        "div",
        { class: "run-meta" },
        badge(sweep.status),
        el("span", {
          id: "sweep-progress",
          text: ` ${trialsDone(sweep).length}/${sweep.n_trials} trials done`,
        }),
        el("span", { text: ` · best ${metric} (${mode}) ` }),
        el("strong", { id: "sweep-best", text: formatNumber(sweep.best_value) }),
        el("span", {
          class: "muted",
          text: ` · ${sweep.sampler} sampler · ${sweep.pruner} pruner · ${sweep.parallelism} at a time`,
        }),
      ),
      el("div", { class: "actions" }, buttons),
    );
  }
  return { node, render };
}

// Rows a page of the trials table shows: a thousand rows would take the browser longer to lay
// out than the rest of the page together.
export const TRIALS_PAGE = 100;

// The trials table, a page at a time. A click on the objective's header sorts by it (the better
// first, then the other way); on "#", by trial number.
export function trialsTable() {
  const sort = { key: "number", desc: false };
  let page = 0;
  const head = el("thead");
  const body = el("tbody");
  const pager = el("div", { class: "toolbar pager", id: "trials-pager", hidden: true });
  const node = el(
    "div",
    { class: "table-wrap" },
    el("table", { class: "runs trials", id: "trials-table" }, head, body),
    pager,
  );
  let last = null;

  function sortBy(key, mode) {
    const firstWay = key === "value" && mode === "max";
    sort.desc = sort.key === key ? !sort.desc : firstWay;
    sort.key = key;
    page = 0;
    render(last);
  }
  function turn(by) {
    page += by;
    render(last);
  }
  function showPager(total) {
    const pages = Math.ceil(total / TRIALS_PAGE);
    pager.hidden = pages <= 1;
    if (pager.hidden) return;
    const first = page * TRIALS_PAGE + 1;
    const end = Math.min(total, (page + 1) * TRIALS_PAGE);
    pager.replaceChildren(
      el("button", {
        type: "button",
        text: "Previous",
        disabled: page === 0,
        onclick: () => turn(-1),
      }),
      el("span", { text: `trials ${first}–${end} of ${total}` }),
      el("button", {
        type: "button",
        text: "Next",
        disabled: page >= pages - 1,
        onclick: () => turn(1),
      }),
    );
  }
  function sorted(sweep) {
    const trials = trialsInOrder(sweep);
    if (sort.key === "number") return sort.desc ? trials.reverse() : trials;
    // Trials without a value go last whichever way.
    const withValue = trials.filter((t) => t.value !== null && t.value !== undefined);
    withValue.sort((a, b) => (a.value - b.value) * (sort.desc ? -1 : 1));
    return [...withValue, ...trials.filter((t) => !withValue.includes(t))];
  }
  function header(sweep, paths) {
    const arrow = (key) => (sort.key === key ? (sort.desc ? " ▼" : " ▲") : "");
    const mode = sweep.objective.mode;
    const th = (key, text) =>
      el("th", { class: "sortable", "data-sort": key, onclick: () => sortBy(key, mode) }, text);
    head.replaceChildren(
      el(
        "tr",
        {},
        th("number", `#${arrow("number")}`),
        el("th", { text: "Run" }),
        el("th", { text: "Status" }),
        paths.map((p) => el("th", { text: p })),
        th("value", `${sweep.objective.metric}${arrow("value")}`),
        el("th", { text: "" }),
      ),
    );
  }
  function row(trial, paths, isBest) {
    const value = (v) => (typeof v === "number" ? formatNumber(v) : String(v ?? "–"));
    return el(
      "tr",
      { "data-run-id": trial.run_id, "data-number": trial.number, class: isBest ? "best" : null },
      el("td", { text: isBest ? `★ ${trial.number}` : trial.number }),
      el("td", {}, el("a", { href: `#/run/${trial.run_id}`, text: `run ${trial.run_id}` })),
      el("td", {}, badge(trial.status)),
      paths.map((p) => el("td", { text: value(trial.params[p]) })),
      el("td", { class: "objective", text: formatNumber(trial.value) }),
      el("td", { class: "note", text: note(trial) }),
    );
  }
  function render(sweep) {
    last = sweep;
    const paths = Object.keys(sweep.space);
    header(sweep, paths);
    const trials = sorted(sweep);
    if (!trials.length) {
      const text = "No trials yet: the first ones start as workers free up.";
      body.replaceChildren(
        el("tr", {}, el("td", { colspan: paths.length + 5, class: "empty", text })),
      );
      return;
    }
    page = Math.min(page, Math.ceil(trials.length / TRIALS_PAGE) - 1);
    const shown = trials.slice(page * TRIALS_PAGE, (page + 1) * TRIALS_PAGE);
    body.replaceChildren(...shown.map((t) => row(t, paths, t.run_id === sweep.best_run_id)));
    showPager(trials.length);
  }
  return { node, render };
}
