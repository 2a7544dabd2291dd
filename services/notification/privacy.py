"""Notification's personal-data use cases: erase on ``customer.erased``, the customer export, and
retention after the ticket closed. What it holds of a customer: the channel's customer id in the
ticket facts and, in each delivery's context, the (masked) event it was planned from, whose free
text may still name the customer. Never a raw phone or email."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from services.notification import store
from shared.envelope import CloudEvent
from shared.errors import DomainError
from shared.runtime import Runtime
from shared.unit import Within

CONSUMER = "notification.customers"
log = logging.getLogger(__name__)


def facts_only(context: dict[str, Any], *, why: str) -> dict[str, Any]:
    """A delivery's context without the event's data: what was said (an agent's message naming the
    customer, the customer's comment) goes; which ticket, event and ticket facts it was stays."""
    return {"ticket_no": context.get("ticket_no"), "event": context.get("event"), "ticket": context.get("ticket"),
            why: True}


async def _scrub(conn: asyncpg.Connection, ticket_nos: list[str], *, erase: bool, now: datetime) -> None:
    # Notification never had the raw name to search for (events carry "李*"), so free text is dropped
    # whole rather than searched: after erasure or retention no delivery of these tickets is rendered again.
    for r in await store.contexts_of(conn, ticket_nos=ticket_nos):
        await store.set_context(conn, delivery_id=r["id"],
                                context=facts_only(r["context"], why="erased" if erase else "purged"))
    await store.forget_ticket_customer(conn, ticket_nos=ticket_nos, column="erased_at" if erase else
                                       "contact_purged_at", now=now)


async def on_customer_erased(rt: Runtime, *, event: CloudEvent, now: datetime, within: Within = None) -> int:
    """Erase what this schema holds about the customer (once per event); pending customer messages
    of those tickets are cancelled. Returns how many tickets it touched."""
    key = event.data.get("customer_key")
    if not isinstance(key, str) or not key:
        raise DomainError("data.customer_key", "required")
    async with rt.unit(consumer=CONSUMER, event=event, within=within) as u:
        if u.duplicate:
            return 0
        nos = [t["ticket_no"] for t in await store.customer_tickets(u.conn, customer_key=key)]
        if nos:
            await _scrub(u.conn, nos, erase=True, now=now)
            await store.cancel_pending(u.conn, ticket_nos=nos, now=now, reason="customer erased")
    log.info("customer erased", extra={"customer_key": key, "tickets": len(nos)})
    return len(nos)


async def export_customer(pool: asyncpg.Pool, *, customer_key: str) -> dict[str, Any]:
    """The ticket facts and every delivery (with its attempts) of the customer's tickets."""
    async with pool.acquire() as conn:
        tickets = [dict(t) for t in await store.customer_tickets(conn, customer_key=customer_key, lock=False)]
        deliveries = await store.export_deliveries(conn, ticket_nos=[t["ticket_no"] for t in tickets])
    return {"service": "notification", "customer_key": customer_key, "tickets": tickets, "deliveries": deliveries}


async def purge_expired(rt: Runtime, *, now: datetime, retention_days: int, batch: int = 200) -> int:
    """Tickets closed more than ``retention_days`` ago: no customer id, contexts reduced to facts."""
    total = 0
    while True:
        async with rt.unit() as u:
            rows = await store.retention_due(u.conn, closed_before=now - timedelta(days=retention_days), limit=batch)
            if rows:
                await _scrub(u.conn, [r["ticket_no"] for r in rows], erase=False, now=now)
        total += len(rows)
        if len(rows) < batch:
            return total
