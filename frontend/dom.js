// Small DOM helpers: every piece of user text goes in through textContent, never as markup.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = String(value);
    else if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// A table of `columns` (their header labels) over `body` (a tbody the caller fills), in the
// scrolling wrapper every list of the page uses; `attrs` go on the table (an id, say).
export function listTable(columns, body, attrs = {}) {
  const head = el(
    "thead",
    {},
    el(
      "tr",
      {},
      columns.map((c) => el("th", { text: c })),
    ),
  );
  return el("div", { class: "table-wrap" }, el("table", { class: "runs", ...attrs }, head, body));
}

// The one row a list shows when it has nothing: `text` across all `columns`.
export function emptyRow(columns, text) {
  return el("tr", {}, el("td", { colspan: columns.length, class: "empty", text }));
}

export function badge(status) {
  return el("span", { class: `badge badge-${status}`, text: status });
}

export function formatNumber(value, digits = 4) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (typeof value !== "number") return String(value);
  return Math.abs(value) >= 1e5 || (Math.abs(value) < 1e-3 && value !== 0)
    ? value.toExponential(2)
    : Number(value.toPrecision(digits)).toString();
}

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

export function runDuration(run) {
  if (!run.started_at) return null;
  const end = run.finished_at ? Date.parse(run.finished_at) : Date.now();
  return (end - Date.parse(run.started_at)) / 1000;
}

export function showError(container, error) {
  container.replaceChildren(
    el("p", { class: "error", role: "alert", text: error.message || String(error) }),
  );
}
