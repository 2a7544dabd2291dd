"""Python's garbage collector set for a long-running service, and its pauses counted.

A service's event loop stops while the collector runs. With CPython's defaults (a young collection
every 700 container allocations) a service handling a few hundred deliveries a second collects
several times for each batch, and every full collection walks the ~100,000 objects the imports and
the start made — modules, pydantic schemas, holiday calendars, templates — which never become
garbage. Measured on the 2-core bench machine (``make bench-e2e``, flat out): 4–12 % of each
service's CPU in the collector, full collections of 50–70 ms of CPU that the busy machine stretched
to 100–550 ms of stopped loop, and those stops in every stage's p99.

So, once a service has started (``settle``):

* the objects alive then are frozen (``gc.freeze``): no later collection walks them again;
* a young collection waits for ``HELPDESK_GC_THRESHOLD`` container allocations (default 20,000;
  0 keeps CPython's 700). Nothing stays uncollected: reference counting frees most objects at once,
  and a cycle waits a little longer (a few deliveries' worth of allocations) before it is collected.

``helpdesk_gc_pause_seconds{generation}`` (a histogram) shows every collection's pause, so a
dashboard can tell a stopped loop from a slow database.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import Gauge, Histogram

PAUSES = Histogram(
    "helpdesk_gc_pause_seconds", "Garbage-collector pauses: the event loop stops meanwhile",
    ["generation"], buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
FROZEN = Gauge("helpdesk_gc_frozen_objects", "Objects frozen after the start (never walked by a collection)")
_by_generation = [PAUSES.labels(str(g)) for g in range(3)]
_started = [0.0]
_pending: list[int] = []  # the threshold to settle with once the service has started (``on_start``)


def _timed(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
    else:
        _by_generation[min(int(info.get("generation", 0)), 2)].observe(time.perf_counter() - _started[0])


def count_pauses() -> None:
    """Time every collection into ``helpdesk_gc_pause_seconds`` (once per process)."""
    if _timed not in gc.callbacks:
        gc.callbacks.append(_timed)


def on_start(threshold: int) -> None:
    """For a service process's entry point (``shared.serve``): count pauses from now on, and ``settle``
    once the service has started (``started``, called by ``Runtime.running``). A process that did not
    ask (a test running services in-process) keeps CPython's collector as it is."""
    count_pauses()
    _pending[:] = [threshold]


def started() -> None:
    """The service has started: ``settle`` if this process's entry point asked for it (``on_start``)."""
    if _pending:
        settle(_pending.pop())


def settle(threshold: int) -> None:
    """After the start: collect what the start left, freeze what is alive (never walked again), and
    let a young collection wait for ``threshold`` allocations (0: CPython's default, unchanged)."""
    count_pauses()
    gc.collect()
    gc.freeze()
    FROZEN.set(gc.get_freeze_count())
    if threshold > 0:
        _, older, oldest = gc.get_threshold()
        gc.set_threshold(threshold, older, oldest)
