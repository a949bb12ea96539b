// An instance: its module, roles and members, and per role a settings form generated from the
// role's JSON Schema (json-editor). Every write goes through the API, which validates it against
// the role's interface and the whole inventory; what it refuses is shown inline, nothing is written.

import { call, has } from "./api.js";
import { clear, el, guarded } from "./dom.js";

let inventoryHash = null;

async function currentHash() {
  if (!inventoryHash) inventoryHash = (await call("get_inventory_state")).hash;
  return inventoryHash;
}

/** A write with the hash of the inventory as this page read it (lost updates are refused). */
async function write(name, args) {
  const result = await call(name, { ...args, expected_hash: await currentHash() });
  inventoryHash = result && result.hash ? result.hash : null;
  document.body.dataset.writes = String(Number(document.body.dataset.writes || 0) + 1); // for tests and tools
  return result;
}

const asEntries = (value) => Array.isArray(value)
  ? value.map((v) => (typeof v === "string" ? [v, {}] : [v.name, v]))
  : Object.entries(value || {});

export async function instanceView(view, name, rerender) {
  inventoryHash = null;
  const errors = el("div");
  view.append(el("h1", {}, "Instance ", el("code", {}, name)), errors);
  if (!(await has("show_instance"))) {
    errors.append(el("p.muted", {}, "Instance writes are not available in this version."));
    return;
  }
  const [instance, machines] = (await guarded(errors, () => Promise.all([
    call("show_instance", { name }), call("list_machines")]))) || [];
  if (!instance) return;
  const module = instance.module || {};
  view.append(el("p", {}, "module ", el("code", {}, module.name || instance.moduleName || "?"),
    module.input ? [" from input ", el("code", {}, module.input)] : null),
  el("div.toolbar", {}, el("button.danger", { "data-testid": "delete-instance", onclick: async () => {
    if (!confirm(`Delete instance ${name}?`)) return;
    if (await guarded(errors, () => write("delete_instance", { name })) !== undefined) location.hash = "#/";
  } }, "Delete instance")));
  for (const [role, details] of asEntries(instance.roles)) {
    view.append(roleSection(name, role, details, machines.map((m) => m.name), rerender));
  }
}

function roleSection(instance, role, details, machineNames, rerender) {
  const memberMachines = asEntries(details.machines).map(([m, v]) => [m, { settings: (details.machineSettings || {})[m] || (v && v.settings) || {} }]);
  const memberTags = asEntries(details.tags).map(([t, v]) => [t, { settings: (details.tagSettings || {})[t] || (v && v.settings) || {} }]);
  const errors = el("div", { "data-testid": `errors-${role}` });
  const section = el("section.role", { "data-role": role }, el("h3", {}, role,
    details.description ? el("span.muted", {}, " — " + details.description) : null),
  details.members && details.members.length
    ? el("p.muted", {}, `resolved members: ${details.members.join(", ")}`) : null,
  Object.keys(details.readOnly || {}).length
    ? el("p.muted", {}, "read-only here: ", Object.entries(details.readOnly).map(([p, why]) => `${p} (${why})`).join("; "))
    : null);

  // members
  const chip = (kind, member) => el("span.member-chip", { "data-member": `${kind}:${member}` }, `${kind === "tag" ? "tag " : ""}${member}`,
    el("button", { title: "remove", onclick: async () => {
      const args = { instance, role, machines: kind === "machine" ? [member] : [], tags: kind === "tag" ? [member] : [] };
      if (await guarded(errors, () => write("remove_member", args)) !== undefined) rerender();
    } }, "×"));
  const who = el("select", { "data-testid": `add-member-${role}` },
    el("option", { value: "" }, "add machine or tag…"),
    machineNames.filter((m) => !memberMachines.some(([n]) => n === m)).map((m) => el("option", { value: `machine:${m}` }, m)),
    el("option", { value: "tag:all" }, "tag: all"));
  const tagInput = el("input", { placeholder: "or a tag", size: 10, "data-testid": `add-tag-${role}` });
  const add = async () => {
    const [kind, value] = tagInput.value ? ["tag", tagInput.value] : who.value.split(":");
    if (!value) return;
    const args = { instance, role, machines: kind === "machine" ? [value] : [], tags: kind === "tag" ? [value] : [] };
    if (await guarded(errors, () => write("add_member", args)) !== undefined) rerender();
  };
  section.append(el("div.members", {}, memberMachines.map(([m]) => chip("machine", m)), memberTags.map(([t]) => chip("tag", t)),
    memberMachines.length + memberTags.length ? null : el("span.muted", {}, "no members")),
  el("div.form-row", {}, who, tagInput, el("button", { onclick: add, "data-testid": `add-${role}` }, "Add")));

  // settings: one form for the chosen scope (role-wide, a member machine, a member tag)
  const scopes = [["role", "", "all members (role settings)", details.settings || {}],
    ...memberMachines.map(([m, v]) => ["machine", m, `machine ${m}`, (v && v.settings) || {}]),
    ...memberTags.map(([t, v]) => ["tag", t, `tag ${t}`, (v && v.settings) || {}])];
  const scope = el("select", { "data-testid": `scope-${role}` }, scopes.map(([k, n, label], i) => el("option", { value: i }, label)));
  const holder = el("div.settings-editor", { "data-testid": `settings-${role}` });
  let editor = null;
  let initial = {}; // the form's value as shown: only what the user changes from it is written
  const schema = details.schema || details.settingsSchema || { type: "object" };
  const mount = () => {
    if (editor) editor.destroy();
    clear(holder);
    const start = scopes[Number(scope.value)][3];
    const current = new window.JSONEditor(holder, {
      schema: { ...schema, title: " " }, theme: "html", iconlib: null, disable_edit_json: false,
      disable_properties: false, disable_collapse: true, show_errors: "change", no_additional_properties: false,
    });
    editor = current;
    // every property shown (with its default), the values set at this scope on top
    current.on("ready", () => {
      current.setValue({ ...current.getValue(), ...start });
      initial = current.getValue();
      holder.dataset.ready = "true";
    });
  };
  scope.addEventListener("change", mount);
  const target = () => {
    const [kind, member] = scopes[Number(scope.value)];
    return { machine: kind === "machine" ? member : null, tag: kind === "tag" ? member : null };
  };
  const save = async () => {
    const before = scopes[Number(scope.value)][3];
    const after = editor.getValue() || {};
    const done = await guarded(errors, async () => {
      for (const [key, value] of Object.entries(after)) {
        if (JSON.stringify(initial[key]) !== JSON.stringify(value)) {
          await write("set_setting", { instance, role, path: key, value, ...target() });
        }
      }
      for (const key of Object.keys(before)) {
        if (!(key in after)) await write("unset_setting", { instance, role, path: key, ...target() });
      }
      return true;
    });
    if (done) rerender();
  };
  // one value at a path, as `pyclan settings set` takes it (and --force / --default)
  const path = el("input", { placeholder: "path (a.b)", "data-testid": `raw-path-${role}` });
  const value = el("input", { placeholder: "value as JSON", size: 24, "data-testid": `raw-value-${role}` });
  const force = el("input", { type: "checkbox" });
  const asDefault = el("input", { type: "checkbox" });
  const setOne = async () => {
    let parsed;
    try {
      parsed = JSON.parse(value.value);
    } catch {
      parsed = value.value; // a bare word is a string
    }
    const args = { instance, role, path: path.value, value: parsed, force: force.checked, default: asDefault.checked, ...target() };
    if (await guarded(errors, () => write("set_setting", args)) !== undefined) rerender();
  };
  section.append(el("div.form-row", {}, el("strong", {}, "settings for"), scope), holder,
    el("div.form-row", {}, el("button.primary", { onclick: save, "data-testid": `save-${role}` }, "Save settings")),
    el("div.form-row", {}, path, value, el("label", {}, force, " force"), el("label", {}, asDefault, " default"),
      el("button", { onclick: setOne, "data-testid": `raw-set-${role}` }, "Set")),
    errors);
  queueMicrotask(mount);
  return section;
}
