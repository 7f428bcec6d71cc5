// Wires the page: hash routes to views, the connection indicator, cleanup between views.
//
// A view is `async (container, args, signal) => cleanup`. Its `signal` aborts when the route
// changes: its reads reject, and it opens no live stream after that, so a view still awaiting
// its first fetches when the user moves on cannot leave anything behind. `cleanup` undoes what
// the view set up once it is shown (timers, listeners, charts).

import { showError } from "./dom.js";
import { compareView } from "./views/compare.js";
import { formView } from "./views/form.js";
import { modelsView } from "./views/models.js";
import { runView } from "./views/run.js";
import { runsView } from "./views/runs.js";
import { sweepView } from "./views/sweep.js";
import { sweepFormView } from "./views/sweepform.js";
import { sweepsView } from "./views/sweeps.js";

const main = document.getElementById("view");
const connection = document.getElementById("connection");
let leaving = new AbortController();
let cleanup = () => {};

function setConnection(state) {
  // true: live; false: lost, reconnecting; null: closed for good.
  connection.hidden = state !== false;
  connection.textContent = state === false ? "Connection lost, reconnecting…" : "";
}

function show(parts, params, signal) {
  if (parts[0] === "new") return formView(main, params, signal);
  if (parts[0] === "run" && /^\d+$/.test(parts[1] || "")) {
    return runView(main, { id: Number(parts[1]), setConnection }, signal);
  }
  if (parts[0] === "compare") return compareView(main, params, signal);
  if (parts[0] === "models") return modelsView(main, params, signal);
  if (parts[0] === "sweeps" && parts[1] === "new") return sweepFormView(main, params, signal);
  if (parts[0] === "sweeps") return sweepsView(main, params, signal);
  if (parts[0] === "sweep" && /^\d+$/.test(parts[1] || "")) {
    return sweepView(main, { id: Number(parts[1]), setConnection }, signal);
  }
  return runsView(main, params, signal);
}

async function route() {
  leaving.abort();
  cleanup();
  cleanup = () => {};
  leaving = new AbortController();
  const { signal } = leaving;
  const [path, query] = (location.hash.slice(1) || "/runs").split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean);
  // A sweep's page is under Sweeps.
  const section = parts[0] === "sweep" ? "sweeps" : parts[0];
  for (const link of document.querySelectorAll("[data-nav]")) {
    link.classList.toggle("active", link.dataset.nav === section);
  }
  try {
    const done = await show(parts, params, signal);
    if (signal.aborted) done();
    else cleanup = done;
  } catch (error) {
    if (!signal.aborted) showError(main, error);
  }
}

window.addEventListener("hashchange", route);
route();
