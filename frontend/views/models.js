// The Models page: the best checkpoints across runs by a metric, each with Download, Export
// (a format, verified by the server) and Try it (a small predict form).

import { api, fileUrl, token } from "../api.js";
import { el, emptyRow, formatNumber, listTable } from "../dom.js";
import { aliasesCard } from "./aliases.js";
import { tryItPanel } from "./tryit.js";

const LIMIT = 20;
const RANKINGS = [
  ["val_loss", "min", "Lowest validation loss"],
  ["val_accuracy", "max", "Highest validation accuracy"],
  ["train_loss", "min", "Lowest training loss"],
];
const FORMATS = [
  ["onnx", "ONNX"],
  ["torchscript", "TorchScript"],
  ["pt2", "torch.export (.pt2)"],
];
const COLUMNS = ["#", "Run", "Dataset", "Model", "Checkpoint", "Value", "Files", "", ""];

const checkpointPath = (row) => `/runs/${row.run_id}/checkpoints/${encodeURIComponent(row.id)}`;

// Exports take seconds the first time and may be refused (422, with the reason): fetched, so
// the reason can be shown, then handed to the browser as a download.
async function downloadExport(row, format, status) {
  status.replaceChildren(el("span", { class: "hint", text: "Exporting…" }));
  const headers = token() ? { Authorization: `Bearer ${token()}` } : {};
  const response = await fetch(`/api${checkpointPath(row)}/export?format=${format}`, { headers });
  if (!response.ok) {
    const body = await response.json().catch(() => ({ detail: response.statusText }));
    const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    status.replaceChildren(el("span", { class: "error", role: "alert", text: detail }));
    return;
  }
  const name = /filename="?([^";]+)"?/.exec(response.headers.get("content-disposition") || "");
  const link = el("a", {
    href: URL.createObjectURL(await response.blob()),
    download: name ? name[1] : `model.${format}`,
  });
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
  status.replaceChildren(el("span", { class: "hint", text: "Exported and verified" }));
}

function row(entry, rank, onTry) {
  const format = el(
    "select",
    { "aria-label": "Export format" },
    FORMATS.map(([value, label]) => el("option", { value, text: label })),
  );
  const status = el("span", { class: "export-status" });
  const exportButton = el("button", {
    text: "Export",
    onclick: async () => {
      exportButton.disabled = true;
      try {
        await downloadExport(entry, format.value, status);
      } catch (error) {
        status.replaceChildren(el("span", { class: "error", text: error.message }));
      } finally {
        exportButton.disabled = false;
      }
    },
  });
  return el(
    "tr",
    { "data-run-id": entry.run_id, "data-checkpoint": entry.id },
    el("td", { text: rank }),
    el("td", {}, el("a", { href: `#/run/${entry.run_id}`, text: entry.run_name })),
    el("td", { text: entry.dataset || "–" }),
    el("td", { text: entry.model || "–" }),
    el("td", { text: `${entry.id}${entry.is_best ? " ★" : ""}` }),
    el("td", { text: formatNumber(entry.value) }),
    el("td", {}, el("a", { href: fileUrl(checkpointPath(entry)), download: "", text: "Download" })),
    el("td", {}, el("div", { class: "export" }, format, exportButton, status)),
    el("td", {}, el("button", { text: "Try it", onclick: () => onTry(entry) })),
  );
}

export async function modelsView(container, params, signal) {
  const ranking = el(
    "select",
    { id: "ranking", "aria-label": "Rank by" },
    RANKINGS.map(([metric, mode, label]) =>
      el("option", { value: `${metric}:${mode}`, text: label }),
    ),
  );
  ranking.value = params.get("rank") || "val_loss:min";
  const body = el("tbody");
  const panel = el("div");
  const aliases = aliasesCard(signal);
  let disposePanel = () => {};

  function showTry(entry) {
    disposePanel();
    const tryIt = tryItPanel(entry);
    disposePanel = tryIt.dispose;
    panel.replaceChildren(tryIt.node);
    tryIt.node.scrollIntoView({ block: "nearest" });
  }

  async function load() {
    const [metric, mode] = ranking.value.split(":");
    const entries = await api.leaderboard({ order_by: metric, mode, limit: LIMIT }, { signal });
    if (!entries.length) {
      const text = "No checkpoints with this metric yet. Train a run, and its best shows here.";
      body.replaceChildren(emptyRow(COLUMNS, text));
      return;
    }
    body.replaceChildren(...entries.map((entry, i) => row(entry, i + 1, showTry)));
    aliases.setChoices(entries);
  }

  ranking.addEventListener("change", () => load().catch(() => {}));
  container.replaceChildren(
    el(
      "section",
      { class: "card" },
      el("div", { class: "toolbar" }, el("h1", { text: "Models" }), ranking),
      el(
        "p",
        { class: "hint" },
        "Each run's best checkpoint. Exports fold the preprocessing into the graph and are checked against the model before they are served.",
      ),
      listTable(COLUMNS, body, { id: "models-table" }),
    ),
    panel,
    aliases.node,
  );
  await Promise.all([load(), aliases.load()]);
  return () => disposePanel();
}
