// Small DOM helpers (no framework): el("tag.class", {attrs}, ...children) and error rendering.

export function el(spec, attrs = {}, ...children) {
  const [tag, ...classes] = spec.split(".");
  const node = document.createElement(tag || "div");
  if (classes.length) node.className = classes.join(" ");
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** The API's Problems as a list: path, message, hint (what the CLI prints, inline). */
export function problems(errors, title = "Refused", limit = 6) {
  const item = (e) => el("li", {},
    e.path ? el("code", {}, e.path) : null, e.path ? ": " : "",
    e.message,
    e.file ? el("span.muted", {}, ` (${e.file}${e.line ? ":" + e.line : ""})`) : null,
    e.hint ? el("div.muted", {}, "hint: " + e.hint) : null);
  const list = errors || [];
  const rest = list.slice(limit);
  return el("div.problems", { role: "alert", "data-testid": "problems" },
    el("strong", {}, title),
    el("ul", {}, list.slice(0, limit).map(item)),
    rest.length ? el("details", {}, el("summary", {}, `${rest.length} more`), el("ul", {}, rest.map(item))) : null);
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

export function stateBadge(state) {
  const text = state || "unknown";
  return el(`span.state.state-${text.replace(/\s+/g, "-")}`, { "data-state": text }, text);
}

/** Run `action`; show its ApiError in `slot` (replacing what was there). */
export async function guarded(slot, action) {
  clear(slot);
  try {
    return await action();
  } catch (err) {
    slot.append(problems(err.errors || [{ path: "", message: String(err) }]));
    return undefined;
  }
}
