// Wires the page: hash routes to views, the connection indicator, cleanup between views.

import { showError } from "./dom.js";
import { compareView } from "./views/compare.js";
import { formView } from "./views/form.js";
import { runView } from "./views/run.js";
import { runsView } from "./views/runs.js";

const main = document.getElementById("view");
const connection = document.getElementById("connection");
let cleanup = null;

function setConnection(state) {
  // true: live; false: lost, reconnecting; null: closed for good.
  connection.hidden = state !== false;
  connection.textContent = state === false ? "Connection lost, reconnecting…" : "";
}

async function route() {
  if (cleanup) { cleanup(); cleanup = null; }
  const [path, query] = (location.hash.slice(1) || "/runs").split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean);
  document.querySelectorAll("[data-nav]").forEach((a) => a.classList.toggle("active", a.dataset.nav === parts[0]));
  try {
    if (parts[0] === "new") await formView(main, params);
    else if (parts[0] === "run" && /^\d+$/.test(parts[1] || "")) cleanup = await runView(main, Number(parts[1]), setConnection);
    else if (parts[0] === "compare") await compareView(main, params);
    else cleanup = runsView(main, params);
  } catch (error) {
    showError(main, error);
  }
}

window.addEventListener("hashchange", route);
route();
