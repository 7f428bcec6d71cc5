// The runs table: filters, sort, pagination, live refresh, selection for compare.

import { api } from "../api.js";
import { badge, el, formatDuration, formatNumber, runDuration } from "../dom.js";

const PAGE_SIZE = 50;
const REFRESH_MS = 2000;
const STATUSES = ["", "queued", "running", "completed", "failed", "diverged", "cancelled", "pruned"];

export function runsView(container, params) {
  const state = { offset: Number(params.get("offset") || 0), status: params.get("status") || "", tag: params.get("tag") || "", q: params.get("q") || "", sort: { key: null, desc: true } };
  const selected = new Set();
  const statusSelect = el("select", { id: "filter-status", "aria-label": "Status" }, STATUSES.map((s) => el("option", { value: s, text: s || "any status" })));
  statusSelect.value = state.status;
  const tagInput = el("input", { id: "filter-tag", placeholder: "tag", "aria-label": "Tag", value: state.tag });
  const searchInput = el("input", { id: "filter-q", type: "search", placeholder: "search name or notes", "aria-label": "Search", value: state.q });
  const compareButton = el("button", { id: "compare-selected", disabled: true, text: "Compare selected", onclick: () => { location.hash = `#/compare?ids=${[...selected].join(",")}`; } });
  const body = el("tbody");
  const pager = el("div", { class: "pager" });
  const columns = [["", null], ["Name", "name"], ["Status", "status"], ["Progress", "epoch"], ["Dataset", null], ["Model", null], ["Optimizer", null], ["LR", null], ["Best val loss", "best"], ["Duration", null], ["Started", "started_at"]];
  const head = el("tr", {}, columns.map(([label, key]) => el("th", key ? { class: "sortable", onclick: () => sortBy(key) } : {}, label)));
  container.replaceChildren(
    el("section", { class: "card" },
      el("div", { class: "toolbar" }, el("h1", { text: "Runs" }), statusSelect, tagInput, searchInput, compareButton),
      el("div", { class: "table-wrap" }, el("table", { class: "runs", id: "runs-table" }, el("thead", {}, head), body)),
      pager));
  let items = [];

  function sortBy(key) {
    state.sort = { key, desc: state.sort.key === key ? !state.sort.desc : false };
    render();
  }
  const sortValue = (run, key) => (key === "best" ? run.summary.best_val_loss ?? Infinity : run[key] ?? "");

  function render() {
    const rows = [...items];
    if (state.sort.key) {
      rows.sort((a, b) => { const x = sortValue(a, state.sort.key), y = sortValue(b, state.sort.key); return (x < y ? -1 : x > y ? 1 : 0) * (state.sort.desc ? -1 : 1); });
    }
    if (!rows.length) {
      body.replaceChildren(el("tr", {}, el("td", { colspan: columns.length, class: "empty", text: "No runs yet. Start one from New run." })));
      return;
    }
    body.replaceChildren(...rows.map(row));
  }

  function row(run) {
    const spec = run.spec || {};
    const box = el("input", { type: "checkbox", "aria-label": `select run ${run.id}`, checked: selected.has(run.id), onchange: (e) => { e.target.checked ? selected.add(run.id) : selected.delete(run.id); compareButton.disabled = selected.size < 2; } });
    const fraction = run.epochs ? run.epoch / run.epochs : 0;
    const progress = el("div", { class: "progress", title: `${run.epoch}/${run.epochs}` }, el("div", { class: "bar", style: `width:${Math.round(fraction * 100)}%` }));
    const eta = run.status === "running" && run.eta_seconds !== null ? ` · ETA ${formatDuration(run.eta_seconds)}` : "";
    return el("tr", { "data-run-id": run.id },
      el("td", {}, box),
      el("td", {}, el("a", { href: `#/run/${run.id}`, text: run.name })),
      el("td", {}, badge(run.status)),
      el("td", {}, progress, el("small", { text: `${run.epoch}/${run.epochs}${eta}` })),
      el("td", { text: spec.dataset?.name ?? "–" }),
      el("td", { text: spec.model?.name ?? (run.kind === "external" ? "external" : "–") }),
      el("td", { text: spec.optimizer?.name ?? "–" }),
      el("td", { text: formatNumber(spec.optimizer?.lr) }),
      el("td", { text: formatNumber(run.summary.best_val_loss) }),
      el("td", { text: formatDuration(runDuration(run)) }),
      el("td", { text: run.started_at ? new Date(run.started_at).toLocaleString() : "–" }));
  }

  async function load() {
    const query = { limit: PAGE_SIZE, offset: state.offset };
    for (const key of ["status", "tag", "q"]) if (state[key]) query[key] = state[key];
    const page = await api.runs(query);
    items = page.items;
    render();
    const last = Math.min(state.offset + PAGE_SIZE, page.total);
    pager.replaceChildren(
      el("button", { text: "‹ Newer", disabled: state.offset === 0, onclick: () => { state.offset = Math.max(0, state.offset - PAGE_SIZE); load(); } }),
      el("span", { id: "runs-count", text: page.total ? `${state.offset + 1}–${last} of ${page.total}` : "0 runs" }),
      el("button", { text: "Older ›", disabled: last >= page.total, onclick: () => { state.offset += PAGE_SIZE; load(); } }));
  }

  let debounce;
  const refilter = () => { clearTimeout(debounce); debounce = setTimeout(() => { state.offset = 0; load(); }, 250); };
  statusSelect.addEventListener("change", () => { state.status = statusSelect.value; refilter(); });
  tagInput.addEventListener("input", () => { state.tag = tagInput.value.trim(); refilter(); });
  searchInput.addEventListener("input", () => { state.q = searchInput.value.trim(); refilter(); });
  load();
  const timer = setInterval(() => { if (!document.hidden) load().catch(() => {}); }, REFRESH_MS);
  return () => clearInterval(timer);
}
