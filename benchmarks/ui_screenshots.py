"""Screenshots of the web UI's fleet view (docs/ui-fleet-3.png, docs/ui-fleet-200.png), and how
long the fleet view takes to show.

The 3-machine clan is a copy of examples/quickstart (check run, then status refreshed: with no
host up every machine shows "unreachable"); the 200-machine one is generated: 4 kinds × 3
regions as tags, 7 instances of the bundled services (roles by tag and by name), check run.
`pyclan serve` is started as a user starts it; Debian's chromium is driven by Playwright.

    python benchmarks/ui_screenshots.py [--out docs] [--machines 200]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KINDS = ("web", "db", "cache", "edge")
REGIONS = ("eu", "us", "ap")


def fleet_toml(count: int) -> str:
    """A clan of `count` machines named <kind>-<region>-<n>, tagged with their kind and region."""
    lines = ['[meta]', 'name = "fleet-200"', ""]
    for i in range(count):
        kind, region = KINDS[i % len(KINDS)], REGIONS[(i // len(KINDS)) % len(REGIONS)]
        lines += [f"[machines.{kind}-{region}-{i:03d}]", f'tags = ["{kind}", "{region}"]', ""]
    lines += [
        "[instances.sshd]", 'roles.server.tags = ["all"]', "",
        "[instances.users-root]", 'module.name = "users"', 'roles.default.tags = ["all"]',
        'roles.default.settings = { user = "root", prompt = false }', "",
        "[instances.packages]", 'roles.default.tags.all.settings.packages = ["htop"]',
        'roles.default.tags.db.settings.packages = ["postgresql-client"]', "",
        "[instances.hello-world]", 'roles.morning.tags = ["eu"]', 'roles.evening.tags = ["us"]', "",
        "[instances.zerotier]", "roles.controller.machines.edge-eu-003 = {}", 'roles.peer.tags = ["all"]', "",
        "[instances.borgbackup]", "roles.server.machines.db-eu-001 = {}", 'roles.client.tags = ["db"]',
        'roles.client.settings.directories = ["/var/lib"]', "",
        "[instances.user-ops]", 'module.name = "users"', 'roles.default.tags = ["edge"]',
        'roles.default.settings = { user = "ops", prompt = false }', "",
    ]
    return "\n".join(lines) + "\n"


@contextmanager
def serving(clan_dir: Path) -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", "from pyclan.cli.main import run; run()", "serve", "-C", str(clan_dir), "--port", "0"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if found := re.search(r"http://\S+\?token=\S+", line):
                yield found[0]
                break
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def shoot(url: str, out: Path, refresh_status: bool, height: int) -> float:
    """Open the fleet view, run check (and a status refresh); screenshot; seconds to first show."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1440, "height": height})
        page.set_default_timeout(120_000)
        begun = time.perf_counter()
        page.goto(url)
        page.wait_for_selector("body[data-ready=fleet] table.matrix tbody tr")
        shown = time.perf_counter() - begun
        page.click("[data-testid=run-check]")
        expect(page.locator("[data-testid=check-result]")).to_be_visible(timeout=180_000)
        if refresh_status:
            page.click("[data-testid=refresh-status]")
            state = page.locator("[data-testid=task-machines_status] [data-testid=task-state]")
            expect(state).to_have_text("succeeded", timeout=180_000)
        page.evaluate("document.querySelectorAll('.progress').forEach((p) => p.remove())")
        page.screenshot(path=str(out))
        browser.close()
    return shown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    parser.add_argument("--machines", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        small = Path(tmp) / "quickstart"
        shutil.copytree(REPO / "examples" / "quickstart", small)
        with serving(small) as url:
            seconds = shoot(url, args.out / "ui-fleet-3.png", refresh_status=True, height=520)
        print(f"fleet view, 3 machines: shown after {seconds:.2f} s")
        big = Path(tmp) / "fleet"
        big.mkdir()
        (big / "clan.toml").write_text(fleet_toml(args.machines))
        with serving(big) as url:
            seconds = shoot(url, args.out / f"ui-fleet-{args.machines}.png", refresh_status=False, height=1000)
        print(f"fleet view, {args.machines} machines: shown after {seconds:.2f} s")


if __name__ == "__main__":
    main()
