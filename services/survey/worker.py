"""The due-work scheduler: sends delayed surveys, the one reminder, and expiries.

Due work is rows in ``survey.surveys`` with ``due_at`` set. The worker claims due rows with
``FOR UPDATE SKIP LOCKED`` (any number of replicas share the work, none does a row twice), then
sleeps until the earliest ``due_at``, or until ``NOTIFY survey_due`` (a trigger, delivered on
commit) says a row's due moment changed, or at most ``poll_s`` (a missed notification, another
replica's rows).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from services.survey import usecases
from services.survey.usecases import Policy
from shared import db
from shared.dueloop import DueLoop
from shared.runtime import Runtime

log = logging.getLogger(__name__)


class DueWorker(DueLoop):
    """Registered with ``rt.add_loop``; each batch of due rows is one unit of work."""

    def __init__(self, rt: Runtime, policy: Policy, *, batch: int = 100, poll_s: float = 30.0) -> None:
        channel = f"{rt.service}_due"
        super().__init__(name=f"due-worker-{channel}", listen_dsn=db.role_dsn(rt.settings, rt.service),
                         channel=channel, max_sleep_s=poll_s)
        self.rt, self.policy, self.batch = rt, policy, batch

    async def pass_once(self) -> float | None:
        """Do everything due now; return how long to sleep before the next due row."""
        while await usecases.run_due(self.rt, self.policy, now=datetime.now(UTC), limit=self.batch) >= self.batch:
            pass
        upcoming = await usecases.next_due(self.rt.pool)
        if upcoming is None:
            return None
        return max(0.0, (upcoming - datetime.now(UTC)).total_seconds())
