// The runs table: filters, sort, pagination, live refresh, selection for compare.

import { api, ignoreAbort } from "../api.js";
import { badge, el, emptyRow, formatDuration, formatNumber, runDuration } from "../dom.js";
import { STATUSES, Status } from "../status.js";
import { CHECK_KINDS } from "./checkresult.js";

const PAGE_SIZE = 50;
const REFRESH_MS = 2000;
const FILTER_DELAY_MS = 250; // typing in a filter reads once the typing pauses
// Label, and the run field a click on the header sorts by (null: not sortable).
const COLUMNS = [
  ["", null],
  ["Name", "name"],
  ["Status", "status"],
  ["Progress", "epoch"],
  ["Dataset", null],
  ["Model", null],
  ["Optimizer", null],
  ["LR", null],
  ["Best val loss", "best"],
  ["Duration", null],
  ["Started", "started_at"],
];

const sortValue = (run, key) =>
  key === "best" ? (run.summary.best_val_loss ?? Infinity) : (run[key] ?? "");

function compareBy({ key, desc }) {
  return (a, b) => {
    const x = sortValue(a, key);
    const y = sortValue(b, key);
    return (x < y ? -1 : x > y ? 1 : 0) * (desc ? -1 : 1);
  };
}

// One table row; `checkbox` is the run's selection box.
function row(run, checkbox) {
  const spec = run.spec || {};
  const fraction = run.epochs ? run.epoch / run.epochs : 0;
  const progress = el(
    "div",
    { class: "progress", title: `${run.epoch}/${run.epochs}` },
    el("div", { class: "bar", style: `width:${Math.round(fraction * 100)}%` }),
  );
  const running = run.status === Status.running && run.eta_seconds !== null;
  const eta = running ? ` · ETA ${formatDuration(run.eta_seconds)}` : "";
  const model = spec.model?.name ?? (run.kind === "external" ? "external" : "–");
  const started = run.started_at ? new Date(run.started_at).toLocaleString() : "–";
  return el(
    "tr",
    { "data-run-id": run.id },
    el("td", {}, checkbox),
    el(
      "td",
      {},
      el("a", { href: `#/run/${run.id}`, text: run.name }),
      Object.hasOwn(CHECK_KINDS, run.kind)
        ? el("small", { class: "run-kind", text: ` · ${CHECK_KINDS[run.kind]}` })
        : null,
    ),
    el("td", {}, badge(run.status)),
    el("td", {}, progress, el("small", { text: `${run.epoch}/${run.epochs}${eta}` })),
    el("td", { text: spec.dataset?.name ?? "–" }),
    el("td", { text: model }),
    el("td", { text: spec.optimizer?.name ?? "–" }),
    el("td", { text: formatNumber(spec.optimizer?.lr) }),
    el("td", { text: formatNumber(run.summary.best_val_loss) }),
    el("td", { text: formatDuration(runDuration(run)) }),
    el("td", { text: started }),
  );
}

export async function runsView(container, params, signal) {
  const state = {
    offset: Number(params.get("offset") || 0),
    status: params.get("status") || "",
    tag: params.get("tag") || "",
    q: params.get("q") || "",
    sort: { key: null, desc: true },
  };
  const selected = new Set();
  const statusSelect = el(
    "select",
    { id: "filter-status", "aria-label": "Status" },
    ["", ...STATUSES].map((s) => el("option", { value: s, text: s || "any status" })),
  );
  statusSelect.value = state.status;
  const tagInput = el("input", {
    id: "filter-tag",
    placeholder: "tag",
    "aria-label": "Tag",
    value: state.tag,
  });
  const searchInput = el("input", {
    id: "filter-q",
    type: "search",
    placeholder: "search name or notes",
    "aria-label": "Search",
    value: state.q,
  });
  const compare = () => {
    location.hash = `#/compare?ids=${[...selected].join(",")}`;
  };
  const compareButton = el("button", {
    id: "compare-selected",
    disabled: true,
    text: "Compare selected",
    onclick: compare,
  });
  const body = el("tbody");
  const pager = el("div", { class: "pager" });
  const head = el(
    "tr",
    {},
    COLUMNS.map(([label, key]) =>
      el("th", key ? { class: "sortable", onclick: () => sortBy(key) } : {}, label),
    ),
  );
  const toolbar = el(
    "div",
    { class: "toolbar" },
    el("h1", { text: "Runs" }),
    statusSelect,
    tagInput,
    searchInput,
    compareButton,
  );
  const table = el("table", { class: "runs", id: "runs-table" }, el("thead", {}, head), body);
  container.replaceChildren(
    el("section", { class: "card" }, toolbar, el("div", { class: "table-wrap" }, table), pager),
  );
  let items = [];

  function sortBy(key) {
    state.sort = { key, desc: state.sort.key === key ? !state.sort.desc : false };
    render();
  }

  function checkbox(run) {
    const select = (event) => {
      if (event.target.checked) selected.add(run.id);
      else selected.delete(run.id);
      compareButton.disabled = selected.size < 2;
    };
    return el("input", {
      type: "checkbox",
      "aria-label": `select run ${run.id}`,
      checked: selected.has(run.id),
      onchange: select,
    });
  }

  function render() {
    const rows = state.sort.key ? [...items].sort(compareBy(state.sort)) : items;
    if (!rows.length) {
      const text = "No runs yet. Start one from New run.";
      body.replaceChildren(emptyRow(COLUMNS, text));
      return;
    }
    body.replaceChildren(...rows.map((run) => row(run, checkbox(run))));
  }

  function goTo(offset) {
    state.offset = offset;
    load().catch(ignoreAbort);
  }

  async function load() {
    const query = { limit: PAGE_SIZE, offset: state.offset };
    for (const key of ["status", "tag", "q"]) if (state[key]) query[key] = state[key];
    const page = await api.runs(query, { signal });
    items = page.items;
    render();
    const last = Math.min(state.offset + PAGE_SIZE, page.total);
    const count = page.total ? `${state.offset + 1}–${last} of ${page.total}` : "0 runs";
    pager.replaceChildren(
      el("button", {
        text: "‹ Newer",
        disabled: state.offset === 0,
        onclick: () => goTo(Math.max(0, state.offset - PAGE_SIZE)),
      }),
      el("span", { id: "runs-count", text: count }),
      el("button", {
        text: "Older ›",
        disabled: last >= page.total,
        onclick: () => goTo(state.offset + PAGE_SIZE),
      }),
    );
  }

  let debounce;
  function refilter(key, value) {
    state[key] = value;
    clearTimeout(debounce);
    debounce = setTimeout(() => goTo(0), FILTER_DELAY_MS);
  }
  statusSelect.addEventListener("change", () => refilter("status", statusSelect.value));
  tagInput.addEventListener("input", () => refilter("tag", tagInput.value.trim()));
  searchInput.addEventListener("input", () => refilter("q", searchInput.value.trim()));

  await load();
  // A refresh that fails (the server restarting, say) keeps the table; the next one retries.
  const timer = setInterval(() => {
    if (!document.hidden) load().catch(() => {});
  }, REFRESH_MS);
  return () => {
    clearInterval(timer);
    clearTimeout(debounce);
  };
}
