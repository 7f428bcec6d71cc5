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
    dialog.addEventListener("close", () => {
      localStorage.setItem(TOKEN_KEY, input.value);
      resolve();
    }, { once: true });
    if (!dialog.open) dialog.showModal();
  });
}

export async function request(method, path, body, { retryAuth = true } = {}) {
  const headers = {};
  if (token()) headers.Authorization = `Bearer ${token()}`;
  let payload;
  if (body instanceof FormData) payload = body;
  else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const response = await fetch(`/api${path}`, { method, headers, body: payload });
  if (response.status === 401 && retryAuth) {
    await askForToken();
    return request(method, path, body, { retryAuth: true });
  }
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, data ? data.detail : response.statusText);
  return data;
}

export const api = {
  catalog: () => request("GET", "/catalog"),
  runs: (params) => request("GET", `/runs?${new URLSearchParams(params)}`),
  run: (id) => request("GET", `/runs/${id}`),
  createRun: (spec) => request("POST", "/runs", spec),
  cancel: (id) => request("POST", `/runs/${id}/cancel`),
  resume: (id) => request("POST", `/runs/${id}/resume`, {}),
  metrics: (id, params) => request("GET", `/runs/${id}/metrics?${new URLSearchParams(params)}`),
  checkpoints: (id) => request("GET", `/runs/${id}/checkpoints`),
  uploadDataset: (form) => request("POST", "/datasets", form),
};

// A link a browser can follow for a file (no headers possible, so the token rides along).
export function fileUrl(path) {
  return token() ? `/api${path}?token=${encodeURIComponent(token())}` : `/api${path}`;
}

// Live events of a run; `handlers` get parsed data; reconnects resume from the last event id.
export function runEvents(id, cursor, handlers, onConnection) {
  const query = new URLSearchParams();
  if (cursor) query.set("last_event_id", cursor);
  if (token()) query.set("token", token());
  const source = new EventSource(`/api/runs/${id}/events?${query}`);
  for (const [name, handler] of Object.entries(handlers)) {
    source.addEventListener(name, (event) => handler(JSON.parse(event.data)));
  }
  source.onopen = () => onConnection(true);
  source.onerror = () => onConnection(source.readyState === EventSource.CLOSED ? null : false);
  return source;
}
