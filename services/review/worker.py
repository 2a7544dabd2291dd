"""The snapshot loop: once 02:00 on the 1st (``HELPDESK_TZ``) has passed, last month is frozen and
published. Every replica runs it; the snapshot's primary key lets exactly one of them publish."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from services.review import periods, snapshots
from services.review.config import ReviewSettings
from shared.runtime import Runtime

log = logging.getLogger(__name__)


class SnapshotLoop:
    def __init__(self, rt: Runtime, cfg: ReviewSettings) -> None:
        self.rt, self.cfg = rt, cfg
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def pass_once(self, now: datetime | None = None) -> bool:
        now = now or datetime.now(UTC)
        tz = self.rt.settings.tz
        due = periods.due_snapshot(now, tz, self.cfg.snapshot_hour)
        if now - due.end(tz) > timedelta(days=self.cfg.snapshot_catchup_days, hours=self.cfg.snapshot_hour):
            return False
        return await snapshots.freeze(self.rt.pool, due, tz=tz, now=now, base_url=self.cfg.base_url)

    async def _run(self) -> None:
        while True:
            try:
                await self.pass_once()
            except Exception as exc:  # noqa: BLE001 - retried on the next pass
                log.warning("snapshot pass failed", extra={"error": repr(exc)})
            await asyncio.sleep(self.cfg.snapshot_poll_s)
