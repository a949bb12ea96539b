"""The web UI in a real browser: Debian's chromium driven by Playwright, against `pyclan serve`.

The server is started as the user starts it (`pyclan serve -C DIR --port 0`), the page opened
with the printed URL (the token). Through the UI: create an instance, add a member, set a
setting with the form generated from the role's JSON Schema, set an invalid one (the API's
error is shown and clan.toml stays byte-for-byte the same), run check; then clan.toml is read.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def server(clan_dir: Path, admin_key: Path) -> Iterator[str]:
    """`pyclan serve` on the clan copy; yields the URL it printed (with the token)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "from pyclan.cli.main import run; run()", "serve", "-C", str(clan_dir), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = None
        for line in proc.stdout:
            found = re.search(r"http://\S+\?token=\S+", line)
            if found:
                url = found[0]
                break
        assert url, proc.stderr.read() if proc.stderr else "no URL printed"
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture
def page(server: str) -> Iterator[object]:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=90_000)  # a wait limit for a loaded CI machine, not a timing assert
    assert CHROMIUM.exists(), "Debian's chromium is needed (scripts/setup.sh installs it)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        tab = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        tab.on("pageerror", lambda exc: errors.append(str(exc)))
        tab.set_default_timeout(90_000)
        tab.goto(server)
        tab.wait_for_selector("body[data-ready=fleet]")
        tab.server_url = server  # type: ignore[attr-defined]
        yield tab
        browser.close()
        assert not errors, errors


def test_ui_writes_instance_member_and_setting_refuses_invalid_and_checks(page: object, clan_dir: Path) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    toml = clan_dir / "clan.toml"
    assert page.locator("table.matrix tbody tr").count() == 3
    expect(page.locator("#clan-name")).to_have_text("quickstart")

    # create an instance (a second hello-world: any number of instances per module)
    page.fill("[data-testid=new-instance-name]", "greet-more")
    page.select_option("[data-testid=new-instance-module]", label="hello-world")
    page.click("[data-testid=new-instance] button[type=submit]")
    page.wait_for_selector("body[data-ready=instance] section[data-role=morning]")
    assert tomllib.loads(toml.read_text())["instances"]["greet-more"]["module"] == {"name": "hello-world"}

    # add a member
    morning = page.locator("section[data-role=morning]")
    morning.locator("[data-testid=add-member-morning]").select_option("machine:sally-laptop")
    morning.locator("[data-testid=add-morning]").click()
    page.wait_for_selector("body[data-writes='2'] section[data-role=morning] [data-member='machine:sally-laptop']")

    # set a setting through the form generated from the role's JSON Schema
    morning = page.locator("section[data-role=morning]")
    field = morning.locator("[data-testid=settings-morning] input[name='root[greeting]']")
    field.fill("Hi there")
    field.dispatch_event("change")
    morning.locator("[data-testid=save-morning]").click()
    page.wait_for_selector("body[data-writes='3']")  # the instance, the member, the setting
    written = tomllib.loads(toml.read_text())["instances"]["greet-more"]["roles"]["morning"]
    assert written["settings"] == {"greeting": "Hi there"}

    # an invalid setting: the API's error is shown, nothing is written
    before = toml.read_bytes()
    morning = page.locator("section[data-role=morning]")
    morning.locator("[data-testid=raw-path-morning]").fill("greeting")
    morning.locator("[data-testid=raw-value-morning]").fill("42")
    morning.locator("[data-testid=raw-set-morning]").click()
    shown = page.locator("[data-testid=errors-morning] [data-testid=problems]")
    expect(shown).to_contain_text("instances.greet-more.roles.morning.settings.greeting")
    expect(shown).to_contain_text("string")
    assert toml.read_bytes() == before
    assert page.locator("body").get_attribute("data-writes") == "3"

    # run check from the fleet view; the new instance is in the matrix
    page.click("header a[href='#/']")
    page.wait_for_selector("body[data-ready=fleet] th[data-instance=greet-more]")
    page.click("[data-testid=run-check]")
    expect(page.locator("[data-testid=check-result]")).to_contain_text("check: ok")
    cell = page.locator("tr[data-machine=sally-laptop] td[data-member='greet-more/morning']")
    expect(cell).to_have_count(1)

    # clan.toml afterwards: the writes, and the file's own comments and order kept
    text = toml.read_text()
    assert text.startswith("# pyclan quickstart:")
    inventory = tomllib.loads(text)
    assert inventory["instances"]["greet-more"] == {
        "module": {"name": "hello-world"},
        "roles": {"morning": {"machines": {"sally-laptop": {}}, "settings": {"greeting": "Hi there"}}},
    }
    assert next(iter(inventory["instances"])) == "internet"


def test_ui_shows_deploy_state_unknown_until_refreshed(page: object) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    row = page.locator("tr[data-machine=sally-laptop]")
    expect(row.locator("[data-state]")).to_have_attribute("data-state", "unknown")
    page.click("[data-testid=refresh-status]")
    state = page.locator("[data-testid=task-machines_status] [data-testid=task-state]")
    expect(state).to_have_text("succeeded", timeout=120_000)
    # no host answers here: every machine is now shown as unreachable, not unknown
    expect(row.locator("[data-state]")).to_have_attribute("data-state", "unreachable")


def _call(url: str, name: str, args: dict[str, object]) -> dict[str, object]:
    """A call of the server's API with its token, as a tool would make it."""
    import json
    import urllib.request

    base, token = url.split("/?token=")
    request = urllib.request.Request(f"{base}/api/{name}", data=json.dumps(args).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def test_ui_update_shows_live_per_host_progress_and_can_cancel(page: object, silent_ssh_port: int) -> None:
    """The machine's host accepts connections and never answers: the update's row shows the
    host's live status while it waits; Cancel stops the task."""
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    target = f"root@127.0.0.1:{silent_ssh_port}"
    assert _call(page.server_url, "set_machine", {"name": "sally-laptop", "target_host": target})["status"] == "success"
    page.click("a[href='#/machine/sally-laptop']")
    page.wait_for_selector("body[data-ready=machine]")
    page.click("button:has-text('Update')")
    task = page.locator("[data-testid=task-update_machines]")
    expect(task.locator("[data-host-status=sally-laptop]")).not_to_be_empty(timeout=60_000)
    task.locator("button:has-text('Cancel')").click()
    # cancelled, or failed if the connect timeout came first on a loaded machine
    expect(task.locator("[data-testid=task-state]")).to_have_text(re.compile("^(cancelled|failed)$"), timeout=60_000)
    expect(task.locator("[data-testid=problems]")).to_be_visible()
