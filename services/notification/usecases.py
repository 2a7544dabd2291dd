"""Turn an event into deliveries: one transaction with the inbox claim, the ticket facts and the
planned rows. Nothing is sent here; the worker sends after the broker message is acked."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from services.notification import domain, metrics, store
from services.notification.config import RulesConfig
from shared import inbox
from shared.batching import after_commit
from shared.envelope import CloudEvent

CONSUMER = "notification.events"


async def plan_event(pool: asyncpg.Pool, *, event: CloudEvent, cfg: RulesConfig, now: datetime) -> int:
    """Record what ``event`` teaches about its ticket and plan its deliveries; returns how many were new
    (0 for a redelivered event: the inbox, and then the (event, recipient, channel) key, stop it)."""
    ticket_no = event.ticket_no or ""
    added: list[domain.Planned] = []
    async with pool.acquire() as conn, conn.transaction():
        if not await inbox.claim(conn, schema="notification", consumer=CONSUMER, message_id=event.id):
            return 0
        facts = await store.update_facts(conn, ticket_no=ticket_no,
                                         changes=domain.fact_changes(event.type, event.data))
        context = {"ticket_no": ticket_no, "event": event.type, "data": event.data,
                   "ticket": {k: facts.get(k) for k in ("priority", "category", "urgency", "assignee")}}
        for p in domain.plan(event.type, event.data, facts, cfg):
            if await store.add_delivery(conn, event_id=event.id, event_type=event.type, ticket_no=ticket_no,
                                        planned=p, context=context, due=now):
                added.append(p)
    for p in added:
        after_commit(metrics.PLANNED.labels(event.type, p.channel).inc)
    return len(added)
