"""The clan lock excludes threads of one process (tasks of `pyclan serve`), and nests within one."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from pyclan.lock import clan_lock


def test_two_threads_exclude_each_other_and_one_thread_nests(tmp_path: Path) -> None:
    events: list[str] = []
    first_in = threading.Event()

    def first() -> None:
        with clan_lock(tmp_path, "first"), clan_lock(tmp_path, "first again"):
            events.append("first in")
            first_in.set()
            time.sleep(0.3)
            events.append("first out")

    def second() -> None:
        first_in.wait()
        with clan_lock(tmp_path, "second"):
            events.append("second in")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert events == ["first in", "first out", "second in"]
