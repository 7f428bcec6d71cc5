// The new-run form, built from GET /api/catalog: a new plugin appears here with no change.
// `?clone=<id>` fills it from a run's spec, `&lr=<value>` with that learning rate (a check run's
// "Use this learning rate").

import { api } from "../api.js";
import { el } from "../dom.js";
import { showFieldErrors } from "../fields.js";
import { specFields } from "../specform.js";
import { formChecks } from "./formchecks.js";

export async function formView(container, params, signal) {
  const cloneId = params.get("clone");
  const [catalog, source] = await Promise.all([
    api.catalog({ signal }),
    cloneId ? api.run(cloneId, { signal }) : null,
  ]);
  // A check run's spec is the spec it checked: the new run keeps its name.
  const name = source?.kind === "job" ? `${source.name} (clone)` : (source?.spec.name ?? "");
  let base = source ? { ...catalog.defaults, ...source.spec, name } : catalog.defaults;
  const lr = Number(params.get("lr"));
  if (params.has("lr") && lr > 0) base = { ...base, optimizer: { ...base.optimizer, lr } };
  const fields = specFields(catalog, base);

  const formError = el("div", { class: "form-error", role: "alert", id: "form-error" });
  const submit = el("button", { type: "submit", class: "primary", text: "Start run" });
  const checks = formChecks({
    buildSpec: fields.read,
    clearErrors,
    showErrors: (error) => showFieldErrors(error, fields.all(), formError),
    useLr(value) {
      const input = fields.byPath["optimizer.lr"].input;
      input.value = String(value);
      input.focus();
    },
    signal,
  });
  const form = el(
    "form",
    { id: "run-form", novalidate: true },
    el("div", { class: "grid" }, fields.fieldsets),
    formError,
    el("div", { class: "form-actions" }, submit, checks.buttons, checks.hint),
    checks.panels,
  );
  const title = !source
    ? "New run"
    : source.kind === "job"
      ? `Clone of run ${cloneId}`
      : `New run from run ${cloneId}`;
  container.replaceChildren(el("section", { class: "card" }, el("h1", { text: title }), form));

  function clearErrors() {
    for (const x of fields.all()) x.error.textContent = "";
    formError.textContent = "";
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    submit.disabled = true;
    try {
      const run = await api.createRun(fields.read());
      // Not after the person has gone elsewhere meanwhile: the run is in the list.
      if (!signal.aborted) location.hash = `#/run/${run.id}`;
    } catch (error) {
      showFieldErrors(error, fields.all(), formError);
    } finally {
      submit.disabled = false;
    }
  });
  return () => checks.destroy();
}
