// The sweeps list: name, status, trials done of how many, best value; newest first, refreshed
// while it is shown; "New sweep" opens the form.

import { api } from "../api.js";
import { badge, el, emptyRow, formatNumber, listTable } from "../dom.js";
import { trialsDone } from "./sweeptrials.js";

const PAGE_SIZE = 50;
const REFRESH_MS = 3000;
const COLUMNS = ["Name", "Status", "Trials done", "Objective", "Best value", "Sampler", "Created"];

function row(sweep) {
  const { metric, mode } = sweep.objective;
  return el(
    "tr",
    { "data-sweep-id": sweep.id },
    el("td", {}, el("a", { href: `#/sweep/${sweep.id}`, text: sweep.name })),
    el("td", {}, badge(sweep.status)),
    el("td", { text: `${trialsDone(sweep).length}/${sweep.n_trials}` }),
    el("td", { text: `${metric} (${mode})` }),
    el("td", { text: formatNumber(sweep.best_value) }),
    el("td", { text: sweep.sampler }),
    el("td", { text: new Date(sweep.created_at).toLocaleString() }),
  );
}

export async function sweepsView(container, params, signal) {
  let offset = Number(params.get("offset") || 0);
  const body = el("tbody");
  const pager = el("div", { class: "pager" });
  const newSweep = el("a", { class: "button primary", href: "#/sweeps/new", text: "New sweep" });
  container.replaceChildren(
    el(
      "section",
      { class: "card" },
      el("div", { class: "toolbar" }, el("h1", { text: "Sweeps" }), newSweep),
      listTable(COLUMNS, body, { id: "sweeps-table" }),
      pager,
    ),
  );

  async function load() {
    const page = await api.sweeps({ limit: PAGE_SIZE, offset }, { signal });
    if (!page.items.length) {
      const text = "No sweeps yet. Start one from New sweep, or from a run's Sweep this.";
      body.replaceChildren(emptyRow(COLUMNS, text));
    } else body.replaceChildren(...page.items.map(row));
    const last = Math.min(offset + PAGE_SIZE, page.total);
    const goTo = (to) => {
      offset = to;
      load().catch(() => {});
    };
    pager.replaceChildren(
      el("button", {
        text: "‹ Newer",
        disabled: offset === 0,
        onclick: () => goTo(Math.max(0, offset - PAGE_SIZE)),
      }),
      el("span", { text: page.total ? `${offset + 1}–${last} of ${page.total}` : "0 sweeps" }),
      el("button", {
        text: "Older ›",
        disabled: last >= page.total,
        onclick: () => goTo(offset + PAGE_SIZE),
      }),
    );
  }

  await load();
  // A refresh that fails (the server restarting, say) keeps the table; the next one retries.
  const timer = setInterval(() => {
    if (!document.hidden) load().catch(() => {});
  }, REFRESH_MS);
  return () => clearInterval(timer);
}
