"""Speed helpers shared by the stages that build many small objects."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_depth = 0


@contextmanager
def gc_paused(*, freeze: bool = True) -> Iterator[None]:
    """Keep the cyclic garbage collector out of a loop that builds many objects.

    Evaluating 10,000 machines allocates millions of small objects; CPython's generational GC
    would rescan them over and over (3x the run time). Reference counting still frees memory;
    only cycle detection waits. When the outermost block ends, what it built (the resolved
    inventory, the configs: long-lived by design) is frozen into the permanent generation, so
    the collections after it do not rescan it either — otherwise the first young collection
    after the block walks every object made inside it. Re-entrant. `freeze=False` for a block
    whose result may be short-lived or fail (loading: an invalid inventory is garbage at once).
    """
    global _depth
    was_enabled = gc.isenabled()
    gc.disable()
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and freeze:
            gc.freeze()
        if was_enabled:
            gc.enable()
