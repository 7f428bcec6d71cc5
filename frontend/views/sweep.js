// One sweep, live: its header, charts (objective by trial, importance, parallel coordinates,
// slices), its trials' curves filtered by the parallel coordinates' brushes, and its trials
// table. The sweep's event stream says when a trial starts, ends or gets its value; curves of
// trials in training are read again every few seconds.

import { api, sweepEvents } from "../api.js";
import { el } from "../dom.js";
import { FINAL_STATUSES, Status } from "../status.js";
import { sweepCurves } from "./sweepcurves.js";
import { sweepPlots } from "./sweepplots.js";
import { sweepHeader, trialsDone, trialsTable } from "./sweeptrials.js";

const CURVES_EVERY_MS = 3000; // a small model's epoch takes about this long on a busy CPU
// The server ends a finished sweep's stream; closing it ourselves a moment later stops the
// browser from reconnecting, after the last events have arrived.
const CLOSE_AFTER_FINAL_MS = 1500;

// Over: nothing more will change (a cancelled sweep's trials may still be winding down).
const over = (s) => s.status !== "running" && s.trials.every((t) => FINAL_STATUSES.has(t.status));

export async function sweepView(container, { id, setConnection }, signal) {
  // Every read comes before anything that needs cleaning up (charts, timers, the stream).
  // Importance is read alongside the sweep (the server may take longer over it); a finished
  // sweep's cannot change, so that answer is the one shown, with the first charts if it is in.
  let first = api.importance(id, { signal });
  let firstAnswer = null;
  first.then(
    (answer) => {
      firstAnswer = answer;
    },
    () => {},
  );
  let sweep = await api.sweep(id, { signal });
  const curves = sweepCurves(id, sweep.objective.metric, signal);
  const plots = sweepPlots(sweep, { onBrush: (ids) => curves.filter(ids) });
  const header = sweepHeader((next) => update(next));
  const table = trialsTable();
  container.replaceChildren(
    el("section", { class: "card" }, header.node),
    plots.node,
    curves.node,
    el("section", { class: "card trials-card" }, el("h2", { text: "Trials" }), table.node),
  );

  // Importance is read again whenever another trial has finished.
  let importanceFor = -1;
  function readImportance() {
    const done = trialsDone(sweep).length;
    if (done === importanceFor) return null;
    importanceFor = done;
    const early = first && over(sweep) ? first : null;
    first = null;
    if (early && firstAnswer) {
      plots.showImportance(firstAnswer.importances || {});
      return Promise.resolve();
    }
    return (early ?? api.importance(id, { signal }))
      .then((answer) => plots.showImportance(answer.importances || {}))
      .catch(() => {
        importanceFor = -1; // try again with the next change
      });
  }
  function update(next) {
    if (signal.aborted) return; // a Cancel's answer after the person has left
    // The stream's sweep comes without its runs.
    sweep = { ...sweep, ...next };
    // The reads go out first: the server answers them while the page draws. Importance first,
    // alone: the curves' larger read would otherwise share the server's time with it. The
    // curves wait for the parallel coordinates' first draw too: drawing a thousand curves
    // takes a frame of its own, which would come between that draw's frames.
    const importance = readImportance() ?? Promise.resolve();
    Promise.all([importance, plots.drawn]).finally(() => curves.refresh(sweep).catch(() => {}));
    header.render(sweep);
    // The charts measure their boxes (a forced layout each): before the table grows the page.
    plots.show(sweep);
    table.render(sweep);
  }
  update(sweep);

  const training = () => sweep.trials.some((t) => t.status === Status.running);
  const timer = setInterval(() => {
    if (training() && !document.hidden) curves.refresh(sweep).catch(() => {});
  }, CURVES_EVERY_MS);

  let ended = over(sweep);
  let source = null;
  const onConnection = (state) => {
    if (ended && state === false) source.close();
    setConnection(ended || state);
    // What changed while the stream was not open (before it first opened, or while lost).
    if (state === true && !ended) {
      api
        .sweep(id, { signal })
        .then((next) => handlers.sweep(next))
        .catch(() => {});
    }
  };
  const handlers = {
    sweep: (next) => {
      update(next);
      if (ended || !over(next)) return;
      ended = true;
      // Its trials are all final: read once more, whole (a trial's last value included).
      setTimeout(() => source.close(), CLOSE_AFTER_FINAL_MS);
      api
        .sweep(id, { signal })
        .then(update)
        .catch(() => {});
    },
  };
  if (!ended) source = sweepEvents(id, handlers, { onConnection, signal });
  return () => {
    source?.close();
    clearInterval(timer);
    plots.destroy();
    curves.destroy();
    setConnection(true);
  };
}
