"""The due-work scheduler: sends delayed surveys, the one reminder, and expiries.

Due work is rows in ``survey.surveys`` with ``due_at`` set. The worker claims due rows with
``FOR UPDATE SKIP LOCKED`` (any number of replicas share the work, none does a row twice), then
sleeps until the earliest ``due_at``, or until ``NOTIFY survey_due`` (a trigger, delivered on
commit) says a row's due moment changed, or at most ``poll_s`` (a missed notification, another
replica's rows).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg

from shared.dueloop import DueLoop

log = logging.getLogger(__name__)


class DueWorker(DueLoop):
    def __init__(
        self, *, pool: asyncpg.Pool, listen_dsn: str, channel: str,
        run: Callable[[datetime, int], Awaitable[int]], next_due: Callable[[], Awaitable[datetime | None]],
        batch: int = 100, poll_s: float = 30.0,
    ) -> None:
        super().__init__(name=f"due-worker-{channel}", listen_dsn=listen_dsn, channel=channel, max_sleep_s=poll_s)
        self.pool, self.run, self.next_due, self.batch = pool, run, next_due, batch

    async def pass_once(self) -> float | None:
        """Do everything due now; return how long to sleep before the next due row."""
        while await self.run(datetime.now(UTC), self.batch) >= self.batch:
            pass
        upcoming = await self.next_due()
        if upcoming is None:
            return None
        return max(0.0, (upcoming - datetime.now(UTC)).total_seconds())
