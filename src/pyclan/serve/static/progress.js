// A task's live view: one row per host with its latest status, the log, the outcome.

import { cancelTask, runTask } from "./api.js";
import { el, problems } from "./dom.js";

/** Run `name` as a task, showing its progress in a panel prepended to `slot`; resolves with the envelope. */
export async function runWithProgress(slot, title, name, args) {
  const rows = new Map();
  const hosts = el("tbody");
  const log = el("div.log");
  const state = el("span.muted", { "data-testid": "task-state" }, "starting");
  const outcome = el("div");
  let taskId = null;
  const cancel = el("button", { onclick: () => taskId && cancelTask(taskId) }, "Cancel");
  const panel = el("div.progress", { "data-testid": `task-${name}` },
    el("div.toolbar", {}, el("strong", {}, title), state, el("span.spacer"), cancel),
    el("table", {}, hosts), log, outcome);
  slot.prepend(panel);
  const onEvent = (event, task) => {
    taskId = task.id;
    if (event.type === "state") state.textContent = event.state;
    if (event.type === "progress") {
      let row = rows.get(event.machine);
      if (!row) {
        row = el("td", { "data-host-status": event.machine });
        rows.set(event.machine, row);
        hosts.append(el("tr", {}, el("td", {}, el("a", { href: `#/machine/${encodeURIComponent(event.machine)}` },
          event.machine)), row));
      }
      row.textContent = event.status.split("\n")[0];
      row.className = /^failed/.test(event.status) ? "bad" : /^(changed|unchanged)/.test(event.status) ? "ok" : "";
    }
    if (event.type === "log") {
      log.append(event.line + "\n");
      log.scrollTop = log.scrollHeight;
    }
  };
  let envelope;
  try {
    envelope = await runTask(name, args, onEvent);
  } catch (err) {
    envelope = { status: "error", errors: err.errors || [{ message: String(err) }] };
  }
  cancel.disabled = true;
  if (envelope.status !== "success") outcome.append(problems(envelope.errors, `${title} failed`));
  return envelope;
}
