// Follows one run to its end by reading GET /api/runs/{id} now and then: for a view that wants
// a run's status and summary, not its whole event stream.

import { api } from "./api.js";
import { FINAL_STATUSES } from "./status.js";

const FIRST_DELAY_MS = 250; // a check on a small model is often done within a second
const MAX_DELAY_MS = 2000; // queued behind other runs, it is read less often
const DEADLINE_MS = 30 * 60 * 1000; // then the run's own page is the place to watch it

function pause(ms, signal) {
  signal.throwIfAborted();
  return new Promise((resolve, reject) => {
    const stop = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", stop);
      resolve();
    }, ms);
    signal.addEventListener("abort", stop, { once: true });
  });
}

// Calls `onUpdate(run)` with `run` and then with each read until the run is final; resolves
// with the last run read (not final if the deadline came first). Rejects with an AbortError
// once `signal` aborts. A read that fails otherwise (the server restarting) is tried again.
export async function followRun(run, onUpdate, signal) {
  const deadline = Date.now() + DEADLINE_MS;
  let delay = FIRST_DELAY_MS;
  let last = run;
  onUpdate(last);
  while (!FINAL_STATUSES.has(last.status) && Date.now() < deadline) {
    await pause(delay, signal);
    delay = Math.min(delay * 1.5, MAX_DELAY_MS);
    try {
      last = await api.run(last.id, { signal });
    } catch (error) {
      if (signal.aborted) throw error;
      continue;
    }
    onUpdate(last);
  }
  return last;
}
