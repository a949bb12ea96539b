// A machine: its tags and deploy state, actions, vars status, generations, effective configuration.

import { call } from "./api.js";
import { el, guarded, problems, stateBadge } from "./dom.js";
import { runWithProgress } from "./progress.js";
import { store } from "./store.js";

export async function machineView(view, name) {
  const errors = el("div");
  view.append(el("h1", {}, "Machine ", el("code", {}, name)), errors);
  const machines = await guarded(errors, () => call("list_machines"));
  const machine = (machines || []).find((m) => m.name === name);
  if (!machine) return;
  const status = store.status ? store.status[name] : null;
  const stateSlot = el("span", {}, stateBadge(status ? status.state : "unknown"));
  const actions = el("div");
  view.append(
    el("table.list", {},
      el("tr", {}, el("th", {}, "tags"), el("td", {}, machine.tags.join(", "))),
      el("tr", {}, el("th", {}, "target host"), el("td", {}, machine.deploy.targetHost || el("span.muted", {}, "not set"))),
      el("tr", {}, el("th", {}, "description"), el("td", {}, machine.description || "")),
      el("tr", {}, el("th", {}, "deploy state"), el("td", {}, stateSlot))),
    el("div.toolbar", {},
      el("button", { onclick: async () => {
        const envelope = await runWithProgress(actions, "machines status", "machines_status", { machines: [name] });
        if (envelope.status === "success" && envelope.data[0]) {
          store.status = { ...(store.status || {}), [name]: envelope.data[0] };
          stateSlot.replaceChildren(stateBadge(envelope.data[0].state));
        }
      } }, "Refresh status"),
      el("button", { onclick: () => runWithProgress(actions, "vars generate", "run_generators", { machines: [name], yes: true }) },
        "Generate vars"),
      el("button.primary", { onclick: () => runWithProgress(actions, "machines update", "update_machines",
        { machines: [name], options: { yes: true } }) }, "Update")),
    actions);

  const varsSlot = el("div");
  const varsCheck = el("div");
  view.append(el("h2", {}, "Vars"), el("div.toolbar", {}, el("button", { "data-testid": "check-vars", onclick: async () => {
    const envelope = await runWithProgress(varsCheck, "vars check", "check_vars", { machines: [name] });
    if (envelope.status !== "success") return;
    const report = envelope.data;
    varsCheck.prepend(report.ok
      ? el("div.notice", { "data-testid": "vars-check" }, `vars: ok — ${report.checked} checked`,
        report.notes.length ? el("div.muted", {}, report.notes.join("; ")) : null)
      : problems(report.issues.map((i) => ({ path: i.var, message: `${i.kind}: ${i.message}`, hint: i.fix })),
        `vars: ${report.issues.length} issue(s)`));
  } }, "Check vars")), varsCheck, varsSlot);
  const vars = await guarded(varsSlot, () => call("list_vars", { machine: name }));
  if (vars) {
    varsSlot.append(vars.length ? el("table.list", { "data-testid": "vars" },
      el("tr", {}, el("th", {}, "var"), el("th", {}, "kind"), el("th", {}, "set"), el("th", {}, "value")),
      vars.map((v) => el("tr", {}, el("td", {}, el("code", {}, v.id)), el("td", {}, v.secret ? "secret" : "public",
        v.shared ? " · shared" : ""), el("td", {}, v.set ? el("span.ok", {}, "yes") : el("span.bad", {}, "missing")),
      el("td", {}, v.value === null || v.value === undefined ? "" : el("code", {}, v.value.slice(0, 80))))))
      : el("p.muted", {}, "no vars"));
  }

  const gens = el("div");
  view.append(el("h2", {}, "Generations"), el("div.toolbar", {},
    el("button", { onclick: () => loadGenerations(gens, name) }, "Load from host")), gens);

  const configSlot = el("div");
  view.append(el("h2", {}, "Effective configuration"), configSlot);
  const config = await guarded(configSlot, () => call("get_machine_config", { machine: name }));
  if (config) {
    for (const [key, value] of Object.entries(config)) {
      const empty = value === null || (Array.isArray(value) && !value.length)
        || (typeof value === "object" && value && !Object.keys(value).length);
      if (empty) continue;
      configSlot.append(el("details", {}, el("summary", {}, key, el("span.muted", {}, ` (${summarise(value)})`)),
        el("pre", {}, JSON.stringify(value, null, 2))));
    }
  }
}

function summarise(value) {
  if (Array.isArray(value)) return `${value.length} item${value.length === 1 ? "" : "s"}`;
  if (typeof value === "object") return `${Object.keys(value).length} entr${Object.keys(value).length === 1 ? "y" : "ies"}`;
  return String(value);
}

async function loadGenerations(slot, name) {
  const gens = await guarded(slot, () => call("list_generations", { machine: name }));
  if (!gens) return;
  slot.append(el("table.list", {},
    el("tr", {}, el("th", {}, "#"), el("th", {}, "id"), el("th", {}, "activated"), el("th", {}, "")),
    gens.map((g) => el("tr", {}, el("td", {}, String(g.generation)), el("td", {}, el("code", {}, g.id.slice(0, 12))),
      el("td", {}, g.activated || ""), el("td", {}, g.current ? "current" : g.unfinished ? "unfinished" : g.failed || "")))));
}
