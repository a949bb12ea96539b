// Talking to `pyclan serve`: calls return the API's envelope; tasks stream their events (SSE).
// The token travels in the HttpOnly cookie set when the printed URL was opened.

export class ApiError extends Error {
  constructor(errors, status) {
    super(errors.map((e) => e.message).join("; "));
    this.errors = errors;
    this.status = status;
  }
}

let busy = 0;
function setBusy(delta) {
  busy += delta;
  const el = document.getElementById("busy");
  if (el) el.hidden = busy <= 0;
}

async function post(url, args) {
  setBusy(1);
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(args || {}),
      credentials: "same-origin",
    });
    let body;
    try {
      body = await response.json();
    } catch {
      body = { status: "error", errors: [{ kind: "internal-error", path: "", message: `HTTP ${response.status}` }] };
    }
    return { response, body };
  } finally {
    setBusy(-1);
  }
}

/** Call an API function; resolves with its data, rejects with ApiError (the Problems). */
export async function call(name, args) {
  const { response, body } = await post(`/api/${name}`, args);
  if (body.status === "success") return body.data;
  throw new ApiError(body.errors || [{ kind: "internal-error", path: "", message: `HTTP ${response.status}` }],
    response.status);
}

let description = null;
/** GET /api, once: the functions and their schemas. */
export async function functions() {
  if (!description) {
    const response = await fetch("/api", { credentials: "same-origin" });
    description = await response.json();
  }
  return description.functions;
}

export async function has(name) {
  return (await functions()).some((f) => f.name === name);
}

/** Start a task; `onEvent(event, task)` sees every event; resolves with the final envelope. */
export async function runTask(name, args, onEvent) {
  const { response, body } = await post(`/api/tasks/${name}`, args);
  if (response.status !== 202) throw new ApiError(body.errors || [], response.status);
  const task = body;
  return new Promise((resolve) => {
    const source = new EventSource(`/api/tasks/${task.id}/events`);
    let result = null;
    const handle = (type) => (message) => {
      const event = JSON.parse(message.data);
      if (type === "result") result = event.envelope;
      if (onEvent) onEvent(event, task);
      if (type === "end") {
        source.close();
        resolve(result || { status: "error", errors: [{ kind: "internal-error", path: "", message: "no result" }] });
      }
    };
    for (const type of ["state", "progress", "log", "result", "end"]) source.addEventListener(type, handle(type));
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) resolve(result || { status: "error", errors: [] });
    };
  });
}

export async function cancelTask(id) {
  await fetch(`/api/tasks/${id}`, { method: "DELETE", credentials: "same-origin" });
}

export async function listTasks() {
  const response = await fetch("/api/tasks", { credentials: "same-origin" });
  return response.json();
}
