// The UI's router: #/ fleet, #/machine/NAME, #/instance/NAME, #/tasks.

import { call } from "./api.js";
import { clear, problems } from "./dom.js";
import { fleetView } from "./fleet.js";
import { instanceView } from "./instance.js";
import { machineView } from "./machine.js";
import { tasksView } from "./tasks.js";

async function route() {
  const view = clear(document.getElementById("view"));
  const [, page, arg] = (location.hash || "#/").slice(1).split("/").map(decodeURIComponent);
  const rerender = () => route();
  try {
    if (page === "machine") await machineView(view, arg);
    else if (page === "instance") await instanceView(view, arg, rerender);
    else if (page === "tasks") await tasksView(view, rerender);
    else await fleetView(view);
  } catch (err) {
    view.append(problems(err.errors || [{ path: "", message: String(err) }], "Could not show this page"));
  }
  document.body.dataset.ready = page || "fleet";
}

window.addEventListener("hashchange", route);
call("get_clan_details").then((d) => { document.getElementById("clan-name").textContent = d.name; }, () => {});
route();
