// Talks to the REST API: JSON in and out, the bearer token, errors as ApiError.

const TOKEN_KEY = "trainboard-token";

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
    this.detail = detail;
  }
}

export function token() {
  return localStorage.getItem(TOKEN_KEY) || "";
}

function askForToken() {
  const dialog = document.getElementById("token-dialog");
  const input = document.getElementById("token-input");
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        localStorage.setItem(TOKEN_KEY, input.value);
        resolve();
      },
      { once: true },
    );
    if (!dialog.open) dialog.showModal();
  });
}

// `signal` (reads only) ends the request when the view that asked for it is left: the promise
// rejects with an AbortError, even when the answer had already arrived.
export async function request(method, path, body, { retryAuth = true, signal } = {}) {
  const headers = {};
  if (token()) headers.Authorization = `Bearer ${token()}`;
  let payload;
  if (body instanceof FormData) payload = body;
  else if (method !== "GET" && method !== "HEAD") {
    // Also without a body: the server refuses writes of other types (a page on another site
    // could send those without asking first).
    headers["Content-Type"] = "application/json";
    if (body !== undefined) payload = JSON.stringify(body);
  }
  const response = await fetch(`/api${path}`, { method, headers, body: payload, signal });
  if (response.status === 401 && retryAuth) {
    await askForToken();
    return request(method, path, body, { retryAuth: true, signal });
  }
  const text = await response.text();
  signal?.throwIfAborted();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, data ? data.detail : response.statusText);
  return data;
}

const query = (params) => new URLSearchParams(params);

// Reads take `{ signal }`; writes do not: a write a person asked for is not taken back.
export const api = {
  catalog: (options) => request("GET", "/catalog", undefined, options),
  runs: (params, options) => request("GET", `/runs?${query(params)}`, undefined, options),
  run: (id, options) => request("GET", `/runs/${id}`, undefined, options),
  metrics: (id, params, options) =>
    request("GET", `/runs/${id}/metrics?${query(params)}`, undefined, options),
  checkpoints: (id, options) => request("GET", `/runs/${id}/checkpoints`, undefined, options),
  createRun: (spec) => request("POST", "/runs", spec),
  lrFind: (spec) => request("POST", "/lr-find", spec),
  preflight: (spec) => request("POST", "/preflight", spec),
  cancel: (id) => request("POST", `/runs/${id}/cancel`),
  resume: (id) => request("POST", `/runs/${id}/resume`, {}),
  uploadDataset: (form) => request("POST", "/datasets", form),
  sweeps: (params, options) => request("GET", `/sweeps?${query(params)}`, undefined, options),
  sweep: (id, options) => request("GET", `/sweeps/${id}?runs=false`, undefined, options),
  importance: (id, options) => request("GET", `/sweeps/${id}/importance`, undefined, options),
  sweepCurves: (id, params, options) =>
    request("GET", `/sweeps/${id}/curves?${query(params)}`, undefined, options),
  createSweep: (sweep) => request("POST", "/sweeps", sweep),
  cancelSweep: (id) => request("POST", `/sweeps/${id}/cancel`),
  leaderboard: (params, options) =>
    request("GET", `/checkpoints?${query(params)}`, undefined, options),
  predict: (runId, body) => request("POST", `/runs/${runId}/predict`, body),
  aliases: (options) => request("GET", "/aliases", undefined, options),
  setAlias: (name, body) => request("PUT", `/aliases/${encodeURIComponent(name)}`, body),
};

// For a read nobody awaits (a click's, a timer's): one ended by leaving its view is no error.
export function ignoreAbort(error) {
  if (error?.name !== "AbortError") throw error;
}

// A link a browser can follow for a file (no headers possible, so the token rides along).
export function fileUrl(path) {
  return token() ? `/api${path}?token=${encodeURIComponent(token())}` : `/api${path}`;
}

// A server-sent event stream at `path`; `handlers` get parsed data. The stream belongs to
// `signal`: none opens once it is aborted, and aborting it closes it.
function events(path, params, handlers, { onConnection, signal }) {
  signal.throwIfAborted();
  if (token()) params.set("token", token());
  const source = new EventSource(`/api${path}?${params}`);
  for (const [name, handler] of Object.entries(handlers)) {
    source.addEventListener(name, (event) => handler(JSON.parse(event.data)));
  }
  source.onopen = () => onConnection(true);
  source.onerror = () => onConnection(source.readyState === EventSource.CLOSED ? null : false);
  signal.addEventListener("abort", () => source.close(), { once: true });
  return source;
}

// Live events of a run; reconnects resume from the last event id.
export function runEvents(id, cursor, handlers, options) {
  const params = new URLSearchParams();
  if (cursor) params.set("last_event_id", cursor);
  return events(`/runs/${id}/events`, params, handlers, options);
}

// Live events of a sweep: `sweep` (the Sweep, without its runs) as its trials change.
export function sweepEvents(id, handlers, options) {
  return events(`/sweeps/${id}/events`, new URLSearchParams(), handlers, options);
}
