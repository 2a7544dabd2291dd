"""Intake's personal-data use cases (README "Data protection"): ticket-creation quotas per API key,
``customer.erase``, the customer export, and the retention purge. Each change is one transaction."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import orjson

from services.intake import store
from shared import erasure
from shared.envelope import CloudEvent
from shared.errors import TooManyRequests
from shared.events import CustomerErased
from shared.masking import mask_deep, mask_identifier, mask_name
from shared.quota import Quotas, keep_windows_since
from shared.runtime import Runtime
from shared.unit import Within

SERVICE = "intake"
log = logging.getLogger(__name__)


# ---- quotas ----

async def use_ticket_quota(pool: asyncpg.Pool, *, caller: str, quotas: Quotas, now: datetime) -> None:
    """Count one ticket creation against ``caller``'s quota; over it: ``TooManyRequests`` (429 with
    ``Retry-After``). Counted in the database, so every intake replica shares the window."""
    quota = quotas.for_caller(caller)
    if quota.limit <= 0:
        return
    start, left_s = quota.window(now)
    async with pool.acquire() as conn:
        used = await store.use_quota(conn, caller=caller, window_start=start)
    if used > quota.limit:
        raise TooManyRequests("X-API-Key", f"{caller!r} may create {quota.limit} tickets per "
                              f"{quota.window_s:g} s; try again in {left_s} s", retry_after_s=left_s)


async def prune_quota(pool: asyncpg.Pool, *, now: datetime) -> None:
    async with pool.acquire() as conn:
        await store.prune_quota(conn, before=keep_windows_since(now))


# ---- scrubbing one ticket (erasure and retention) ----

def _known(t: asyncpg.Record, *, erase: bool) -> dict[str, str]:
    known = erasure.known_values(name=t["customer_name"], phone=t["customer_phone"], email=t["customer_email"],
                                 customer_id=t["customer_id"])
    if erase and t["customer_name"]:
        known[t["customer_name"].strip()] = erasure.ERASED
    return known


async def _scrub(conn: asyncpg.Connection, t: asyncpg.Record, *, erase: bool, now: datetime) -> None:
    """The ticket's contacts gone, its name erased (or masked when only retention ends), its free text
    masked, in the row, its timeline and its outbox; numbers, times and categories stay."""
    known = _known(t, erase=erase)
    external = t["external_id"]
    if external and mask_identifier(external) != external:
        external = f"erased:{t['ticket_no']}"  # still unique: it is the channel's idempotency key
    complaint = orjson.loads(t["complaint"]) if t["complaint"] else None
    stamp = {"erased_at": now} if erase else {"contact_purged_at": now}
    await store.scrub_ticket(
        conn, ticket_no=t["ticket_no"], customer_phone=None, customer_email=None, customer_id=None,
        customer_name=None if erase else mask_name(t["customer_name"]), external_id=external,
        subject=erasure.scrub_text(t["subject"], known), description=erasure.scrub_text(t["description"], known),
        complaint=erasure.scrub(complaint, known), **stamp,
    )
    nos = [t["ticket_no"]]
    for row in await store.timeline_of(conn, ticket_nos=nos):
        data = erasure.scrub(orjson.loads(row["data"]), known)
        await store.set_timeline_data(conn, event_id=row["event_id"],
                                      data=erasure.without_customer_words(data) if erase else data)
    for row in await store.outbox_of(conn, ticket_nos=nos):
        envelope = orjson.loads(bytes(row["body"]))
        envelope["data"] = erasure.scrub(envelope.get("data"), known)  # the envelope's ids stay as they are
        await store.set_outbox_body(conn, row_id=row["id"], body=orjson.dumps(envelope))


# ---- customer.erase ----

async def erase_customer(rt: Runtime, *, customer_key: str, actor: str, now: datetime,
                         message_id: str | None = None, within: Within = None) -> dict[str, Any]:
    """Erase every ticket of ``customer_key`` and announce ``customer.erased`` (only the key) in the same
    transaction. Idempotent: a repeat erases nothing new and announces again (subscribers are idempotent);
    a redelivered ``customer.erase`` (same message id) does nothing at all."""
    async with rt.unit(consumer="customers", message_id=message_id, within=within) as u:
        if u.duplicate:
            return {"customer_key": customer_key, "duplicate": True}
        tickets = await store.customer_tickets(u.conn, customer_key=customer_key, for_update=True)
        fresh = [t for t in tickets if t["erased_at"] is None]
        for t in fresh:
            await _scrub(u.conn, t, erase=True, now=now)
        await store.add_unticketed_event(u.conn, event=_erased(customer_key, now))
    log.info("customer erased", extra={"customer_key": customer_key, "tickets": len(fresh), "actor": actor})
    return {"customer_key": customer_key, "tickets": len(tickets), "newly_erased": len(fresh),
            "erased_at": now.isoformat()}


def _erased(customer_key: str, now: datetime) -> CloudEvent:
    """``customer.erased``: about a customer, not a ticket (no ``subject``, no ``ticket_no``/``seq``)."""
    return CloudEvent(id=str(uuid.uuid4()), source=f"/helpdesk/{SERVICE}", type=CustomerErased.type, time=now,
                      data=mask_deep(CustomerErased(customer_key=customer_key).payload()))


# ---- export ----

async def export_customer(pool: asyncpg.Pool, *, customer_key: str) -> dict[str, Any]:
    """Everything intake holds about the customer: every ticket row (raw contacts while they are kept)
    with its timeline."""
    async with pool.acquire() as conn:
        tickets = await store.customer_tickets(conn, customer_key=customer_key)
        timeline = await store.timeline_of(conn, ticket_nos=[t["ticket_no"] for t in tickets])
    events: dict[str, list[dict[str, Any]]] = {}
    for r in timeline:
        events.setdefault(r["ticket_no"], []).append(
            {"id": r["event_id"], "type": r["type"], "source": r["source"], "seq": r["seq"], "time": r["time"],
             "data": orjson.loads(r["data"])})
    out = []
    for t in tickets:
        row = dict(t)
        row["complaint"] = orjson.loads(row["complaint"]) if row["complaint"] else None
        row["timeline"] = events.get(t["ticket_no"], [])
        out.append(row)
    return {"service": SERVICE, "customer_key": customer_key, "tickets": out}


# ---- retention ----

async def purge_expired(rt: Runtime, *, now: datetime, retention_days: int, batch: int = 200) -> int:
    """Tickets closed more than ``retention_days`` ago lose their raw contacts; their name is masked and
    their free text keeps only its masked form. Run daily; returns how many tickets it purged."""
    closed_before = now - timedelta(days=retention_days)
    total = 0
    while True:
        async with rt.unit() as u:
            rows = await store.retention_due(u.conn, closed_before=closed_before, limit=batch)
            for t in rows:
                await _scrub(u.conn, t, erase=False, now=now)
        total += len(rows)
        if len(rows) < batch:
            break
    if total:
        log.info("contacts purged after retention", extra={"tickets": total, "days": retention_days})
    return total


async def daily(rt: Runtime, *, now: datetime) -> int:
    """The daily job: retention (``HELPDESK_CONTACT_RETENTION_DAYS`` after close), old quota windows."""
    purged = await purge_expired(rt, now=now, retention_days=rt.settings.contact_retention_days)
    await prune_quota(rt.pool, now=now)
    return purged
