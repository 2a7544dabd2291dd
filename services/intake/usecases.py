"""Intake's use cases: each is one unit of work (``rt.unit``) holding the state change, its event and its inbox row."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import orjson

from services.intake import domain, metrics, records, store
from shared.envelope import CloudEvent
from shared.errors import DomainError, NotFound
from shared.events import TicketCreated
from shared.masking import mask_identifier
from shared.messages import Command, IntakeTicket
from shared.runtime import Runtime
from shared.unit import Tx, Within

SERVICE = "intake"
log = logging.getLogger(__name__)


async def create_ticket(
    rt: Runtime, *, tz: ZoneInfo, msg: IntakeTicket, caller: str | None, transport: str, key_secret: str,
    message_id: str | None = None, within: Within = None,
) -> tuple[asyncpg.Record | None, bool]:
    """Register a ticket; ``(ticket, False)`` when ``channel`` + ``external_id`` already made one.
    In a prepared batch a new ticket's row is written at the batch's flush: ``(None, True)``, and the
    same ticket again in that batch is ``(None, False)``.

    Without an ``external_id`` the delivery's ``message_id`` (AMQP message id, HTTP Idempotency-Key)
    is the idempotency key, so a redelivered message never makes a second ticket.
    """
    now = datetime.now(UTC)
    prepared = within.memo.get(PREPARED, {}).pop(id(msg), None) if within is not None else None
    if prepared is None:
        day, received_at = _checked(msg, now=now, tz=tz)
        prep = None
    else:  # checked and looked up with its batch (``prepare``)
        day, received_at, prep = prepared
    try:
        return await _register(rt, day=day, msg=msg, received_at=received_at, now=now, caller=caller,
                               message_id=message_id, transport=transport, key_secret=key_secret, within=within,
                               tz=tz, prep=prep)
    except asyncpg.UndefinedTableError:  # the day's first ticket: its serial sequence is not there yet
        if within is not None:
            raise  # the batch rolls back; handled alone, the message lands in the branch below
        await store.ensure_serial_sequence(rt.pool, day=day)
        return await _register(rt, day=day, msg=msg, received_at=received_at, now=now, caller=caller,
                               message_id=message_id, transport=transport, key_secret=key_secret, within=None, tz=tz)


async def _register(
    rt: Runtime, *, day: date, msg: IntakeTicket, received_at: datetime, now: datetime,
    caller: str | None, message_id: str | None, transport: str, key_secret: str, within: Within, tz: ZoneInfo,
    prep: asyncpg.Record | None = None,
) -> tuple[asyncpg.Record | None, bool]:
    """One unit: number, store and announce the ticket (or find the duplicate, maybe one that just won)."""
    key = domain.customer_key(msg.customer, key_secret)
    async with rt.unit(within=within) as u:
        duplicate = metrics.RECEIVED.labels(msg.channel, transport, "duplicate").inc
        # the duplicate check, the day's next serial and the customer's history: one round trip, or none
        # in a prepared batch (``prepare``: the batch's in one)
        staged = prep is not None  # looked up with its batch: its insert joins the batch's
        if prep is None:
            [prep] = await store.prepare_registrations(
                u.conn, [(day, msg.channel, msg.external_id, message_id, key, received_at)])
        earlier: dict[str, list[datetime]] = u.memo.setdefault(REGISTERED, {})
        returning = prep["returning"]
        if key and not returning:  # an earlier ticket of the same customer registered in this transaction
            returning = any(at < received_at for at in earlier.get(key, ()))
        if prep["duplicate"]:
            u.after_commit(duplicate)
            return await store.find_duplicate(
                u.conn, channel=msg.channel, external_id=msg.external_id, message_id=message_id), False
        ticket_no = domain.ticket_number(day, prep["serial"])
        columns, extra = await records.on_register(u.conn, msg=msg, received_at=received_at, tz=tz,
                                                   customer_key=key, returning=returning)
        fields = dict(ticket_no=ticket_no, msg=msg, received_at=received_at, caller=caller,
                      message_id=message_id, customer_key=key, **columns)
        if staged:  # a prepared batch: every new ticket in one insert at its flush (``store.add_tickets``)
            taken: set[tuple[str, str, str]] = u.memo.setdefault(STAGED, set())
            keys = {(kind, msg.channel, value) for kind, value in (("ext", msg.external_id), ("mid", message_id))
                    if value}
            if keys & taken:  # the same ticket again in this batch: what its insert would have found
                u.after_commit(duplicate)
                return None, False
            taken |= keys
            u.stage(store.add_tickets, store.new_ticket_row(**fields))
            ticket = None
        else:
            ticket = await store.insert_ticket(u.conn, **fields)
        if key:
            earlier.setdefault(key, []).append(received_at)
        if ticket is None and not staged:  # a concurrent duplicate won the unique key; its row is committed
            u.after_commit(duplicate)
            return await store.find_duplicate(
                u.conn, channel=msg.channel, external_id=msg.external_id, message_id=message_id), False
        u.emit(ticket_no, TicketCreated(
            channel=msg.channel, external_id=mask_identifier(msg.external_id),
            customer=domain.masked_customer(msg.customer), customer_key=key,
            subject=msg.subject, description=msg.description, kind=msg.kind, urgency=msg.urgency,
            impact=msg.impact, order_no=msg.order_no, product=msg.product,
            complaint=msg.complaint.model_dump(mode="json") if msg.complaint else None,
            received_at=received_at, created_at=now, caller=caller, **extra,
        ))
        u.after_commit(metrics.RECEIVED.labels(msg.channel, transport, "created").inc)
    return ticket, True


PREPARED, REGISTERED, STAGED = "intake.prepared", "intake.registered", "intake.staged"  # Tx.memo keys


async def prepare(tx: Tx, items: list[tuple[IntakeTicket, str | None]], *, tz: ZoneInfo, key_secret: str) -> None:
    """A batch's registrations looked up in one statement (``store.prepare_registrations``) before its
    handlers run: each ticket's duplicate check, serial and customer history, kept for ``create_ticket``
    by the message object. A message that fails the checks is left to its handler (refused alone)."""
    now = datetime.now(UTC)
    inputs = []
    for msg, message_id in items:
        try:
            day, received_at = _checked(msg, now=now, tz=tz)
        except DomainError:
            continue
        inputs.append((msg, (day, msg.channel, msg.external_id, message_id,
                             domain.customer_key(msg.customer, key_secret), received_at)))
    if inputs:
        rows = await store.prepare_registrations(tx.conn, [item for _, item in inputs])
        tx.memo[PREPARED] = {id(m): (item[0], item[5], row) for (m, item), row in zip(inputs, rows, strict=True)}


def _checked(msg: IntakeTicket, *, now: datetime, tz: ZoneInfo) -> tuple[date, datetime]:
    """The rules beyond field types; the ticket's numbering day and ``received_at``."""
    received_at = domain.check_intake(msg, now=now)
    records.check_intake(msg, received_at=received_at, tz=tz)
    return domain.numbering_day(now, tz), received_at


async def apply_command(
    rt: Runtime, *, action: str, cmd: Command, caller: str | None, message_id: str | None = None,
    within: Within = None,
) -> asyncpg.Record:
    """Apply an agent's command; a repeated ``command_id`` (else AMQP message id) returns the ticket unchanged."""
    key = cmd.command_id or message_id
    async with rt.unit(consumer="commands", message_id=f"{cmd.ticket_no}:{key}" if key else None,
                       within=within) as u:
        ticket = await store.get(u.conn, ticket_no=cmd.ticket_no, for_update=True)
        if ticket is None:
            raise NotFound("ticket_no", f"no ticket {cmd.ticket_no}")
        if u.duplicate:
            u.after_commit(metrics.COMMANDS.labels(action, "duplicate").inc)
            return ticket
        status = domain.next_status(ticket["status"], action)
        changes, event = await records.decide(u.conn, action, ticket, cmd, datetime.now(UTC))
        await store.update(u.conn, ticket_no=cmd.ticket_no, status=status, **changes)
        u.emit(cmd.ticket_no, event)
        updated = await store.get(u.conn, ticket_no=cmd.ticket_no)
        u.after_commit(metrics.COMMANDS.labels(action, "applied").inc)
        if action == "resolve":
            u.after_commit(metrics.RESOLVED.labels(updated["priority"] or "none",
                                                   str(bool(updated["first_contact"])).lower()).inc)
    log.info("command applied", extra={"ticket_no": cmd.ticket_no, "action": action, "actor": cmd.actor,
                                       "caller": caller, "status": status})
    return updated


async def record_event(rt: Runtime, *, event: CloudEvent, within: Within = None) -> None:
    """Feed the read model: every event about a ticket joins its timeline; routing's decide assignment."""
    if event.source == f"/helpdesk/{SERVICE}" or not event.ticket_no:
        return  # our own events entered the timeline in the transaction that caused them
    async with rt.unit(within=within) as u:
        # every event joins the timeline: staged, one insert per batch, which refuses an unknown ticket
        u.stage(store.record_events, event)
        data = event.data
        if event.type == "ticket.routed":  # routing decides the assignment (staged: one write per batch)
            u.stage(store.apply_routed, (event.ticket_no, int(data.get("seq") or 0),
                                         *(data.get(k) for k in ("category", "priority", "department", "assignee",
                                                                 "rule"))))
        elif event.type == "ticket.escalated":
            await store.update(u.conn, ticket_no=event.ticket_no, escalated=True)


async def view(pool: asyncpg.Pool, *, ticket_no: str, created_by: str | None = None) -> dict[str, Any]:
    """The ticket as ``GET /v1/tickets/{no}`` shows it: status, assignment, SLA state, timeline.

    With ``created_by`` (a channel's key) a ticket another caller created is not found."""
    async with pool.acquire() as conn:
        t = await store.get(conn, ticket_no=ticket_no)
        if t is None or (created_by is not None and t["caller"] != created_by):
            raise NotFound("ticket_no", f"no ticket {ticket_no}")
        events = [
            {"id": r["event_id"], "type": r["type"], "source": r["source"], "seq": r["seq"],
             "time": r["time"], "data": orjson.loads(r["data"])}
            for r in await store.timeline(conn, ticket_no=ticket_no)
        ]
    customer = domain.masked_customer_from_row(t)
    return {
        "ticket_no": t["ticket_no"], "status": t["status"], "channel": t["channel"],
        "external_id": t["external_id"], "customer": customer, "subject": t["subject"],
        "description": t["description"], "kind": t["kind"], "urgency": t["urgency"], "impact": t["impact"],
        "order_no": t["order_no"], "product": t["product"],
        "complaint": orjson.loads(t["complaint"]) if t["complaint"] else None,
        "received_at": t["received_at"], "created_at": t["created_at"], "updated_at": t["updated_at"],
        "assignment": {k: t[k] for k in ("category", "priority", "department", "assignee", "rule")},
        "handling": {"responses": t["responses"], "first_response_at": t["first_response_at"],
                     "escalated": t["escalated"], "reopened": t["reopened"], "outcome": t["outcome"],
                     "first_contact": t["first_contact"], "resolved_at": t["resolved_at"],
                     "closed_at": t["closed_at"]},
        **records.view_fields(t),
        "sla": domain.sla_state(events),
        "timeline": events,
    }


async def contact(pool: asyncpg.Pool, *, ticket_no: str, caller: str, per_minute: int) -> dict[str, Any]:
    """The customer's unmasked contact details (for the notification service only), audited and
    rate-limited as :func:`contacts`."""
    found = await contacts(pool, ticket_nos=[ticket_no], caller=caller, per_minute=per_minute)
    if ticket_no not in found:
        raise NotFound("ticket_no", f"no ticket {ticket_no}")
    return found[ticket_no]


async def contacts(pool: asyncpg.Pool, *, ticket_nos: list[str], caller: str, per_minute: int
                   ) -> dict[str, dict[str, Any]]:
    """The unmasked contacts of many tickets in one query (unknown tickets are left out). Every ticket
    read is recorded (caller, ticket, time) and counted; over ``per_minute`` ticket reads a minute a key
    gets 429 (a batch counts each of its tickets)."""
    async with pool.acquire() as conn, conn.transaction():
        if await store.count_contact_read(conn, caller=caller, reads=len(ticket_nos)) > per_minute:
            metrics.CONTACT_READS.labels(caller, "limited").inc()
            raise TooManyRequests("X-API-Key", f"more than {per_minute} contact reads a minute for {caller!r}")
        rows = await store.read_contacts(conn, caller=caller, ticket_nos=ticket_nos)
    metrics.CONTACT_READS.labels(caller, "read").inc(len(rows))  # committed: an HTTP read is never in a batch
    return {t["ticket_no"]: {"ticket_no": t["ticket_no"], "name": t["customer_name"], "phone": t["customer_phone"],
                             "email": t["customer_email"], "language": t["customer_language"],
                             "tier": t["customer_tier"], "channel": t["channel"]} for t in rows}


class TooManyRequests(DomainError):
    status = 429


async def refresh_open_gauge(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        rows = await store.open_counts(conn)
    metrics.set_open(rows)


async def housekeeping(pool: asyncpg.Pool, *, tz: ZoneInfo) -> None:
    """Drop per-day serial sequences older than yesterday (numbering never goes back to them)."""
    today = domain.numbering_day(datetime.now(UTC), tz)
    async with pool.acquire() as conn:
        await store.drop_old_serials(conn, before=today - timedelta(days=1))
