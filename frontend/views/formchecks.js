// The form's sanity checks: "Find learning rate" and "Check first" send the form's spec as a
// check run (POST /api/lr-find, POST /api/preflight), then follow it to its end in a panel
// under the form. A spec the server refuses shows its errors as the form's own submit does.

import { api, ignoreAbort } from "../api.js";
import { el } from "../dom.js";
import { followRun } from "../follow.js";
import { FINAL_STATUSES } from "../status.js";
import { checkPanel } from "./checkresult.js";

const CHECKS = [
  { id: "find-lr", label: "Find learning rate", panel: "lr-find-result", post: api.lrFind },
  { id: "check-first", label: "Check first", panel: "preflight-result", post: api.preflight },
];
const HINT =
  "Find learning rate: a quick range test on a copy of the model. " +
  "Check first: can the model overfit one batch? Both leave your form as it is.";

// `buildSpec()`: the form's spec; `clearErrors()` and `showErrors(error)`: the form's error
// slots; `useLr(lr)`: puts an lr into the form; `signal`: the view's (following ends with it).
export function formChecks({ buildSpec, clearErrors, showErrors, useLr, signal }) {
  const checks = CHECKS.map((c) => {
    const panel = checkPanel({ id: c.panel, onUseLr: useLr, link: true });
    panel.node.hidden = true;
    let following = null;
    const button = el("button", { type: "button", id: c.id, text: c.label });
    button.addEventListener("click", async () => {
      clearErrors();
      button.disabled = true;
      let run;
      try {
        run = await c.post(buildSpec());
      } catch (error) {
        showErrors(error);
        return;
      } finally {
        button.disabled = false;
      }
      if (signal.aborted) return;
      // A second click follows the new run; the first one's is on the runs page.
      following?.abort();
      following = new AbortController();
      panel.node.hidden = false;
      const both = AbortSignal.any([signal, following.signal]);
      const last = await followRun(run, panel.show, both).catch(ignoreAbort);
      if (last && !FINAL_STATUSES.has(last.status)) panel.tooLong(last);
    });
    return { button, panel };
  });
  return {
    buttons: checks.map((c) => c.button),
    hint: el("small", { class: "checks-hint", text: HINT }),
    panels: el(
      "div",
      { class: "checks" },
      checks.map((c) => c.panel.node),
    ),
    destroy() {
      for (const c of checks) c.panel.destroy();
    },
  };
}
