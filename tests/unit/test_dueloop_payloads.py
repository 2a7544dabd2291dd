"""A loop with ``due_payloads`` (SLA's timers) wakes for a NOTIFY only when what it announces is due
before the loop wakes anyway; every other loop, and any NOTIFY during a pass or without a due moment,
wakes it as before."""

from __future__ import annotations

import time

from shared.dueloop import WAKE_MARGIN_S, DueLoop


class Loop(DueLoop):
    def __init__(self, due_payloads: bool) -> None:
        super().__init__(name="t", listen_dsn=None, channel="t", max_sleep_s=30)
        self.due_payloads = due_payloads


def woken(loop: DueLoop, payload: str, *, wake_in: float | None) -> bool:
    loop._wake.clear()
    loop._wake_at = 0.0 if wake_in is None else time.time() + wake_in
    loop._notified(payload)
    return loop._wake.is_set()


def test_a_clock_due_after_the_planned_wake_up_is_left_to_it() -> None:
    loop, now = Loop(True), time.time()
    assert not woken(loop, f"{now + 60:.6f}", wake_in=10)  # due later than the loop wakes
    assert not woken(loop, f"{now + 10 + WAKE_MARGIN_S + 0.2:.6f}", wake_in=10)
    assert woken(loop, f"{now + 5:.6f}", wake_in=10)  # due earlier: wake now and plan again
    assert woken(loop, f"{now - 5:.6f}", wake_in=10)  # already due
    assert woken(loop, f"{now + 10.1:.6f}", wake_in=10)  # within the skew margin: wake
    assert woken(loop, f"{now + 60:.6f}", wake_in=None)  # a pass is running: look again after it
    assert woken(loop, "", wake_in=10) and woken(loop, "not a time", wake_in=10)


def test_other_loops_wake_for_every_notify() -> None:
    loop, now = Loop(False), time.time()
    assert woken(loop, f"{now + 60:.6f}", wake_in=10) and woken(loop, "", wake_in=10)
