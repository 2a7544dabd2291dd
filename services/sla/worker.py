"""The timer loop: sleep until the next due clock, fire every due one exactly once, repeat.

No polling tick: the loop sleeps until ``min(fire_at)`` and is woken early by
``NOTIFY sla_timers`` (a trigger on the clocks table, delivered when a transaction that adds or
moves a timer commits). Due rows are claimed in batches with ``FOR UPDATE SKIP LOCKED`` and the
announcement goes to the outbox in the same transaction that marks the timer fired, so any number
of replicas fire each timer once, and a timer that came due while every replica was down fires as
soon as one is back. ``max_sleep_s`` only bounds a sleep in case a notification was lost while the
listening connection was being re-established.
"""

from __future__ import annotations

import logging

from services.sla import domain, metrics, store
from services.sla.lifecycle import Reactor
from services.sla.usecases import announce
from shared import db
from shared.dueloop import DueLoop
from shared.runtime import Runtime

log = logging.getLogger(__name__)


class Timers(DueLoop):
    """Registered with ``rt.add_loop``; each batch of due timers is one unit of work. A clock's change
    wakes it only when that clock fires before the loop would wake anyway (migration 0004)."""

    due_payloads = True

    def __init__(self, rt: Runtime, *, reactor: Reactor, batch: int = 500, max_sleep_s: float = 30.0) -> None:
        super().__init__(name="sla-timers", listen_dsn=db.role_dsn(rt.settings, rt.service),
                         channel=f"{rt.service}_timers", max_sleep_s=max_sleep_s)
        self.rt, self.reactor, self.batch = rt, reactor, batch

    async def pass_once(self) -> float | None:
        while await self.fire_once() >= self.batch:
            pass
        async with self.rt.pool.acquire() as conn:
            return await store.seconds_to_next(conn)

    def on_error(self, exc: Exception) -> None:  # database trouble: nothing is lost, the rows stay due
        log.warning("timer pass failed", extra={"error": repr(exc)})

    async def fire_once(self) -> int:
        """Fire one batch of due timers; returns how many rows were claimed."""
        p = self.reactor.p
        async with self.rt.unit() as u:
            claimed = await store.claim_due(u.conn, limit=self.batch)
            if not claimed:
                return 0
            # one lock order (ticket, metric) for the per-ticket event sequence rows: no deadlocks
            claimed.sort(key=lambda cn: (cn[0].ticket_no, cn[0].metric))
            fired, said, late = [], [], []
            for clock, now in claimed:
                new, announcements = domain.fire(clock, self.reactor.cal(clock), now, p.warning_at)
                fired.append(new)
                said.extend(announcements)
                if clock.fire_at is not None:
                    late += [(e.type.removeprefix("sla."), (now - clock.fire_at).total_seconds())
                             for _, e in announcements]
            await store.save_clocks(u.conn, fired)
            announce(u, said)
            u.after_commit(lambda: _count(said, late))
        return len(claimed)


def _count(said: list[domain.Announcement], late: list[tuple[str, float]]) -> None:
    metrics.count(said)
    for kind, seconds in late:
        metrics.LATENESS.labels(kind).observe(max(0.0, seconds))
        metrics.FIRED.labels(kind).inc()
