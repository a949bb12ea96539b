// Every task of this server: state, per-host status, cancel.

import { cancelTask, listTasks } from "./api.js";
import { el, problems } from "./dom.js";

export async function tasksView(view, rerender) {
  const tasks = await listTasks();
  view.append(el("h1", {}, "Tasks"), el("div.toolbar", {}, el("button", { onclick: rerender }, "Refresh")));
  if (!tasks.length) {
    view.append(el("p.muted", {}, "No task has run yet."));
    return;
  }
  view.append(el("table.list", { "data-testid": "tasks" },
    el("tr", {}, el("th", {}, "started"), el("th", {}, "function"), el("th", {}, "state"), el("th", {}, "hosts"), el("th", {}, "")),
    tasks.map((t) => el("tr", { "data-task": t.id },
      el("td", {}, new Date(t.started * 1000).toLocaleTimeString()),
      el("td", {}, el("code", {}, t.function)),
      el("td", {}, t.state),
      el("td", {}, Object.entries(t.hosts).map(([m, s]) => el("div", {}, `${m}: ${s.split("\n")[0]}`))),
      el("td", {}, t.state === "running"
        ? el("button", { onclick: async () => { await cancelTask(t.id); rerender(); } }, "Cancel")
        : t.result && t.result.status === "error" ? problems(t.result.errors, "failed") : "")))));
}
