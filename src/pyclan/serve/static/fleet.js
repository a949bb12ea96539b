// The fleet: machines × instances/roles, with tags, check results and deploy state.

import { call, has } from "./api.js";
import { clear, el, guarded, problems, stateBadge } from "./dom.js";
import { runWithProgress } from "./progress.js";
import { store } from "./store.js";

export async function fleetView(view) {
  const errors = el("div");
  view.append(el("h1", {}, "Fleet"), errors);
  const data = await guarded(errors, async () => {
    const [machines, resolved] = await Promise.all([call("list_machines"), call("resolve_inventory")]);
    return { machines, resolved };
  });
  if (!data) return;
  const { machines, resolved } = data;
  const columns = instanceColumns(resolved);
  const tags = [...new Set(machines.flatMap((m) => m.tags))].sort();

  const filter = el("input", { type: "search", placeholder: "filter: name or tag", "data-testid": "filter",
    value: store.filter || "" });
  const chips = el("div.chips", {}, tags.map((t) => el("span.chip", { "data-tag": t, onclick: () => toggleTag(t) }, t)));
  const actions = el("div");
  const table = el("table.matrix", { "data-testid": "matrix" });
  const count = el("span.muted");

  const toolbar = el("div.toolbar", {},
    filter, count, el("span.spacer"),
    el("button", { onclick: () => refreshStatus(), "data-testid": "refresh-status" }, "Refresh status"),
    el("button", { onclick: () => runCheck(), "data-testid": "run-check" }, "Run check"),
    el("button", { onclick: () => generate(), "data-testid": "run-generate" }, "Generate vars"),
    el("button.primary", { onclick: () => update(), "data-testid": "run-update" }, "Update shown machines"));
  view.append(toolbar, chips, actions, el("div.matrix-wrap", {}, table), await newInstanceForm(actions));

  const render = () => {
    const shown = visible(machines);
    count.textContent = `${shown.length} of ${machines.length} machines · ${Object.keys(resolved.members).length} instances`;
    for (const chip of chips.children) chip.classList.toggle("on", (store.tags || []).includes(chip.dataset.tag));
    clear(table).append(header(columns), body(shown, columns, resolved));
  };
  const visible = (list) => {
    const text = (store.filter || "").trim().toLowerCase();
    const wanted = store.tags || [];
    return list.filter((m) => wanted.every((t) => m.tags.includes(t))
      && (!text || m.name.toLowerCase().includes(text) || m.tags.some((t) => t.toLowerCase().includes(text))));
  };
  const toggleTag = (t) => {
    const on = new Set(store.tags || []);
    on.has(t) ? on.delete(t) : on.add(t);
    store.tags = [...on];
    render();
  };
  filter.addEventListener("input", () => { store.filter = filter.value; render(); });

  const refreshStatus = async () => {
    const envelope = await runWithProgress(actions, "machines status", "machines_status", { all_machines: true });
    if (envelope.status === "success") {
      store.status = Object.fromEntries(envelope.data.map((s) => [s.machine, s]));
      render();
    }
  };
  const runCheck = async () => {
    const envelope = await runWithProgress(actions, "check", "check_clan", {});
    if (envelope.status !== "success") return;
    store.check = envelope.data;
    const report = envelope.data;
    const warnings = (report.warnings || []).length
      ? el("div.muted", {}, `${report.warnings.length} warning(s): `, report.warnings.slice(0, 3).map((w) => w.message).join("; "))
      : null;
    const failed = (report.checks || []).filter((c) => c.severity === "error");
    const summary = report.ok
      ? el("div.notice", { "data-testid": "check-result" }, `check: ok — ${report.machines} machines, ${report.instances} instances`,
        warnings)
      : problems([...report.errors, ...failed.filter((c) => !report.errors.some((e) => e.message === c.message))
        .map((c) => ({ path: c.id, message: c.message }))], `check: ${report.errors.length} problem(s)`);
    summary.dataset.testid = "check-result";
    actions.prepend(summary);
    render();
  };
  const generate = () => runWithProgress(actions, "vars generate", "run_generators",
    { machines: visible(machines).map((m) => m.name), yes: true });
  const update = () => {
    const names = visible(machines).map((m) => m.name);
    if (!names.length || !confirm(`Deploy ${names.length} machine(s)? ${names.slice(0, 5).join(", ")}${names.length > 5 ? ", …" : ""}`)) {
      return undefined;
    }
    return runWithProgress(actions, "machines update", "update_machines", { machines: names, options: { yes: true } });
  };
  render();
}

function instanceColumns(resolved) {
  const cols = [];
  for (const [instance, roles] of Object.entries(resolved.members).sort()) {
    const roleNames = Object.keys(roles).sort();
    for (const role of roleNames.length ? roleNames : [""]) cols.push({ instance, role, span: roleNames.length || 1 });
  }
  return cols;
}

function problemPaths() {
  return (store.check && !store.check.ok ? store.check.errors : []).map((e) => e.path || "");
}

function header(columns) {
  const paths = problemPaths();
  const top = el("tr.instances", {}, el("th.machine", { rowspan: 2 }, "machine"),
    el("th", { rowspan: 2 }, "deploy state"), el("th", { rowspan: 2 }, "gen"), el("th", { rowspan: 2 }, "check"));
  const roles = el("tr.roles");
  let last = null;
  for (const col of columns) {
    if (col.instance !== last) {
      const bad = paths.some((p) => p.startsWith(`instances.${col.instance}.`) || p === `instances.${col.instance}`);
      top.append(el(`th.instance${bad ? ".error" : ""}`, { colspan: col.span, "data-instance": col.instance },
        el("a", { href: `#/instance/${encodeURIComponent(col.instance)}` }, col.instance)));
      last = col.instance;
    }
    roles.append(el("th", { title: `${col.instance} / ${col.role}` }, col.role));
  }
  top.append(el("th", { rowspan: 2 }, "tags"));
  return el("thead", {}, top, roles);
}

function body(machines, columns, resolved) {
  const paths = problemPaths();
  const rows = machines.map((m) => {
    const status = store.status ? store.status[m.name] : null;
    const cells = columns.map((col) => {
      const members = (resolved.members[col.instance] || {})[col.role] || [];
      const member = members.includes(m.name);
      const bad = member && paths.some((p) => p.includes(`.machines.${m.name}`) && p.startsWith(`instances.${col.instance}.`));
      return el(`td.cell${member ? ".member" : ""}${bad ? ".error" : ""}`,
        member ? { title: `${m.name}: ${col.instance} / ${col.role}`, "data-member": `${col.instance}/${col.role}` } : {},
        member ? col.role.slice(0, 1).toUpperCase() || "•" : "");
    });
    return el("tr", { "data-machine": m.name },
      el("th.machine", {}, el("a", { href: `#/machine/${encodeURIComponent(m.name)}` }, m.name)),
      el("td", {}, stateBadge(status ? status.state : "unknown")),
      el("td", {}, status && status.generation != null ? String(status.generation) : ""),
      checkCell(m.name),
      cells,
      el("td.tags", { title: m.tags.join(", ") }, m.tags.join(" ")));
  });
  return el("tbody", {}, rows);
}

/** The machine's check outcome: ok, or how many problems name it (their messages as the title). */
function checkCell(machine) {
  if (!store.check) return el("td.muted", {}, "");
  const mine = (store.check.errors || []).filter((e) => {
    const p = e.path || "";
    return p === `machines.${machine}` || p.startsWith(`machines.${machine}.`) || p.includes(`.machines.${machine}.`)
      || p.endsWith(`.machines.${machine}`);
  });
  return mine.length
    ? el("td.bad", { title: mine.map((e) => e.message).join("\n"), "data-check": "problems" }, `${mine.length} ✗`)
    : el("td.ok", { "data-check": "ok" }, "ok");
}

async function newInstanceForm(slot) {
  if (!(await has("create_instance"))) return el("p.muted", {}, "Instance writes are not available in this version.");
  const modules = await call("list_service_modules").catch(() => []);
  const name = el("input", { placeholder: "instance name", "data-testid": "new-instance-name", required: true });
  const module = el("select", { "data-testid": "new-instance-module" },
    modules.filter((m) => !m.error).map((m) => el("option", { value: JSON.stringify([m.name, m.input]) },
      m.input ? `${m.name} (${m.input})` : m.name)));
  const errors = el("div");
  const create = async (event) => {
    event.preventDefault();
    const [moduleName, input] = JSON.parse(module.value);
    const done = await guarded(errors, async () => {
      const state = await call("get_inventory_state");
      return call("create_instance", { name: name.value, module: moduleName, input, expected_hash: state.hash });
    });
    if (done !== undefined) document.body.dataset.writes = String(Number(document.body.dataset.writes || 0) + 1);
    if (done !== undefined) location.hash = `#/instance/${encodeURIComponent(name.value)}`;
  };
  return el("form", { onsubmit: create, "data-testid": "new-instance" },
    el("h2", {}, "New instance"),
    el("div.form-row", {}, name, module, el("button.primary", { type: "submit" }, "Create")), errors);
}
