"""Survey's personal-data use cases: erase on ``customer.erased``, the customer export, retention of
comments. What it holds of a customer: the customer_key of each ticket, and the comments customers
wrote (also in the ``survey.completed`` / ``survey.negative`` events of its outbox); the scores and
the complaint history by key are facts the reviews keep."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import orjson

from services.survey import store
from shared import erasure
from shared.envelope import CloudEvent
from shared.errors import DomainError
from shared.runtime import Runtime
from shared.unit import Within
from shared.masking import mask_text

CONSUMER = "survey.customers"
log = logging.getLogger(__name__)


def _without_comment(body: bytes) -> bytes:
    envelope = orjson.loads(body)
    envelope["data"] = erasure.without_customer_words(envelope.get("data"))
    return orjson.dumps(envelope)


async def on_customer_erased(rt: Runtime, *, event: CloudEvent, now: datetime, within: Within = None) -> int:
    """The customer's comments erased (rows and outbox events) in the tickets of that key, once per event."""
    key = event.data.get("customer_key")
    if not isinstance(key, str) or not key:
        raise DomainError("data.customer_key", "required")
    async with rt.unit(consumer=CONSUMER, event=event, within=within) as u:
        if u.duplicate:
            return 0
        nos = [t["ticket_no"] for t in await store.customer_tickets(u.conn, customer_key=key)]
        if nos:
            await store.erase_surveys(u.conn, ticket_nos=nos, now=now)
            for row in await store.outbox_of(u.conn, ticket_nos=nos):
                await store.set_outbox_body(u.conn, row_id=row["id"], body=_without_comment(bytes(row["body"])))
    log.info("customer erased", extra={"customer_key": key, "tickets": len(nos)})
    return len(nos)


async def export_customer(pool: asyncpg.Pool, *, customer_key: str) -> dict[str, Any]:
    async with pool.acquire() as conn:
        rows = await store.export_rows(conn, customer_key=customer_key)
    return {"service": "survey", "customer_key": customer_key, **rows}


async def purge_expired(rt: Runtime, *, now: datetime, retention_days: int, batch: int = 200) -> int:
    """Comments answered more than ``retention_days`` ago keep only their masked form."""
    total = 0
    while True:
        async with rt.unit() as u:
            rows = await store.comments_due(u.conn, answered_before=now - timedelta(days=retention_days), limit=batch)
            for r in rows:
                await store.set_comment(u.conn, survey_id=r["survey_id"], comment=mask_text(r["comment"]), now=now)
        total += len(rows)
        if len(rows) < batch:
            return total
