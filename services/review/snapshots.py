"""Freezing a period's review (the published 复盘) and announcing it: ``review.published``."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import asyncpg

from services.review import metrics, reports, store
from services.review.periods import Period
from shared.envelope import CloudEvent
from shared.events import ReviewPublished

log = logging.getLogger(__name__)


def published_event(body: dict, *, base_url: str, frozen_at: datetime) -> CloudEvent:
    """``review.published``: about a period, not a ticket (``subject`` is the period; no ticket_no/seq)."""
    data = ReviewPublished(period=body["period"], previous_period=body["previous_period"],
                           url=f"{base_url.rstrip('/')}/reviews/{body['period']}", frozen_at=frozen_at,
                           headline=reports.headline(body))
    return CloudEvent(id=str(uuid.uuid4()), source="/helpdesk/review", type=data.type, subject=body["period"],
                      time=frozen_at, data=data.payload())


async def freeze(pool: asyncpg.Pool, period: Period, *, tz: ZoneInfo, now: datetime, base_url: str,
                 trigger: str = "schedule") -> bool:
    """Freeze ``period`` as computed now, with its exact statistics (a later review's "previous" and trend
    read them), and publish ``review.published`` (outbox, same transaction).
    False when it was frozen already: a published review never changes."""
    async with pool.acquire() as conn:
        if await store.has_snapshot(conn, period=period.name):
            return False
    body, stats = await reports.computed(pool, period, tz=tz, now=now)
    async with pool.acquire() as conn, conn.transaction():
        if not await store.save_snapshot(conn, period=period.name, body=body, frozen_at=now, stats=stats):
            return False
        await store.add_outbox(conn, event=published_event(body, base_url=base_url, frozen_at=now))
    metrics.SNAPSHOTS.labels(trigger).inc()
    log.info("review frozen and published", extra={"period": period.name})
    return True
