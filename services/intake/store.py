"""Intake's SQL — the only module that talks to the ``intake`` schema."""

from __future__ import annotations

import contextlib
from datetime import date, datetime
from typing import Any

import asyncpg
import orjson

from shared.envelope import CloudEvent
from shared.errors import DomainError
from shared.messages import IntakeTicket

S = "intake"


async def ensure_serial_sequence(pool: asyncpg.Pool, *, day: date) -> None:
    """Create ``day``'s serial sequence, committed at once (not inside a ticket's transaction, where
    concurrent creators would wait on each other until that ticket commits)."""
    # UniqueViolation/DuplicateTable: another replica created it at the same moment
    with contextlib.suppress(asyncpg.UniqueViolationError, asyncpg.DuplicateTableError):
        await pool.execute(f"CREATE SEQUENCE IF NOT EXISTS {S}.serial_{day:%Y%m%d} AS bigint START 1")


async def next_serial(conn: asyncpg.Connection, *, day: date) -> int:
    """Next serial for ``day`` from that day's own sequence (``intake.serial_YYYYMMDD``, made by
    ``ensure_serial_sequence``). ``nextval`` never blocks another transaction and is never rolled
    back, so numbering is unique across any number of replicas without a hot counter row; a failed
    ticket leaves a gap, which the contract tolerates."""
    return await conn.fetchval("SELECT nextval($1::regclass)", f"{S}.serial_{day:%Y%m%d}")


async def drop_old_serials(conn: asyncpg.Connection, *, before: date) -> int:
    """Drop the per-day sequences of days before ``before`` (they are never used again)."""
    names = await conn.fetch(
        "SELECT sequencename FROM pg_sequences WHERE schemaname = $1 AND sequencename ~ '^serial_[0-9]{8}$'"
        " AND sequencename < $2",
        S, f"serial_{before:%Y%m%d}",
    )
    for row in names:
        await conn.execute(f"DROP SEQUENCE IF EXISTS {S}.{row['sequencename']}")
    return len(names)


async def insert_ticket(
    conn: asyncpg.Connection, *, ticket_no: str, msg: IntakeTicket, received_at: datetime, caller: str | None,
    message_id: str | None, customer_key: str | None = None,
) -> asyncpg.Record | None:
    """Insert and return the row; None when ``channel`` + ``external_id`` (or + ``message_id``) has a ticket."""
    c = msg.customer
    return await conn.fetchrow(
        f"""INSERT INTO {S}.tickets (ticket_no, channel, external_id, message_id, status, customer_name, customer_id,
                customer_phone, customer_email, customer_tier, customer_language, subject, description, kind,
                urgency, impact, order_no, product, complaint, caller, received_at, customer_key)
            VALUES ($1,$2,$3,$20,'new',$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$21)
            ON CONFLICT DO NOTHING RETURNING *""",
        ticket_no, msg.channel, msg.external_id, c.name, c.id, c.phone, c.email, c.tier, c.language,
        msg.subject, msg.description, msg.kind, msg.urgency, msg.impact, msg.order_no, msg.product,
        orjson.dumps(msg.complaint.model_dump(mode="json")).decode() if msg.complaint else None,
        caller, received_at, message_id, customer_key,
    )


async def find_duplicate(
    conn: asyncpg.Connection, *, channel: str, external_id: str | None, message_id: str | None
) -> asyncpg.Record | None:
    """The ticket already registered for this channel's ``external_id`` (or intake ``message_id``)."""
    return await conn.fetchrow(
        f"SELECT * FROM {S}.tickets WHERE channel = $1 AND (external_id = $2 OR message_id = $3)"
        " ORDER BY external_id = $2 DESC LIMIT 1",
        channel, external_id, message_id,
    )


async def get(conn: asyncpg.Connection, *, ticket_no: str, for_update: bool = False) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT * FROM {S}.tickets WHERE ticket_no = $1{lock}", ticket_no)


_UPDATABLE = {
    "status", "category", "priority", "department", "assignee", "first_assignee", "rule", "routed_seq",
    "escalated", "responses", "reopened", "first_response_at", "waiting_since", "outcome", "first_contact",
    "resolved_at", "closed_at",
}


async def update(conn: asyncpg.Connection, *, ticket_no: str, **fields: Any) -> None:
    if unknown := set(fields) - _UPDATABLE:
        raise ValueError(f"not updatable: {unknown}")
    cols = list(fields)
    sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(cols, start=2))
    await conn.execute(
        f"UPDATE {S}.tickets SET {sets}, updated_at = now() WHERE ticket_no = $1",
        ticket_no, *(fields[c] for c in cols),
    )


async def record_event(conn: asyncpg.Connection, *, event: CloudEvent) -> bool:
    """Add an event to its ticket's timeline; False when it is already there (a redelivery) or the
    ticket is unknown (``get`` tells which)."""
    row = await conn.fetchval(
        f"INSERT INTO {S}.timeline (event_id, ticket_no, type, source, seq, time, data)"
        f" SELECT $1,$2,$3,$4,$5,$6,$7 WHERE EXISTS (SELECT 1 FROM {S}.tickets WHERE ticket_no = $2)"
        " ON CONFLICT (event_id) DO NOTHING RETURNING 1",
        event.id, event.ticket_no, event.type, event.source, event.data.get("seq"), event.time,
        orjson.dumps(event.data).decode(),
    )
    return row is not None


async def record_events(conn: asyncpg.Connection, events: list[CloudEvent]) -> None:
    """The batch form of ``record_event`` (one statement): events already there are skipped; an event
    about a ticket intake never registered raises ``DomainError`` (its batch is then handled one by one)."""
    inserted = await conn.fetch(
        f"INSERT INTO {S}.timeline (event_id, ticket_no, type, source, seq, time, data)"
        " SELECT u.* FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::timestamptz[],"
        f" $7::jsonb[]) AS u(event_id, ticket_no, type, source, seq, time, data)"
        f" WHERE EXISTS (SELECT 1 FROM {S}.tickets t WHERE t.ticket_no = u.ticket_no)"
        " ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
        [e.id for e in events], [e.ticket_no for e in events], [e.type for e in events],
        [e.source for e in events], [e.data.get("seq") for e in events], [e.time for e in events],
        [orjson.dumps(e.data).decode() for e in events],
    )
    if len(inserted) == len(events):
        return
    missing = {e.ticket_no for e in events} - {
        r["ticket_no"] for r in await conn.fetch(f"SELECT ticket_no FROM {S}.tickets WHERE ticket_no = ANY($1)",
                                                 list({e.ticket_no for e in events}))}
    if missing:
        raise DomainError("data.ticket_no", f"unknown ticket {sorted(missing)[0]}")


async def timeline(conn: asyncpg.Connection, *, ticket_no: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT event_id, type, source, seq, time, data FROM {S}.timeline WHERE ticket_no = $1"
        " ORDER BY time, source, seq",
        ticket_no,
    )


async def open_counts(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT status, coalesce(priority, 'none') AS priority, count(*) AS n FROM {S}.tickets"
        " WHERE status <> 'closed' GROUP BY 1, 2"
    )


# --- access: the audit of unmasked contact reads and their per-key rate limit

async def count_contact_read(conn: asyncpg.Connection, *, caller: str) -> int:
    """Count one read in ``caller``'s current one-minute window; returns the window's reads so far
    (older windows are dropped as they pass)."""
    await conn.execute(f"DELETE FROM {S}.contact_rate WHERE caller = $1 AND window_start < date_trunc('minute', now())",
                       caller)
    return await conn.fetchval(
        f"INSERT INTO {S}.contact_rate AS r (caller, window_start, reads) VALUES ($1, date_trunc('minute', now()), 1)"
        " ON CONFLICT (caller, window_start) DO UPDATE SET reads = r.reads + 1 RETURNING reads",
        caller,
    )


async def record_contact_read(conn: asyncpg.Connection, *, caller: str, ticket_no: str) -> None:
    await conn.execute(f"INSERT INTO {S}.contact_reads (caller, ticket_no) VALUES ($1, $2)", caller, ticket_no)


async def contact_reads(conn: asyncpg.Connection, *, ticket_no: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT caller, ticket_no, read_at FROM {S}.contact_reads WHERE ticket_no = $1 ORDER BY id", ticket_no)
