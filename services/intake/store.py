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


# A new ticket's columns and their types: the one-row insert and the batch's (``add_tickets``) share them.
_NEW_COLUMNS = (
    ("ticket_no", "text"), ("channel", "text"), ("external_id", "text"), ("message_id", "text"),
    ("status", "text"), ("customer_name", "text"), ("customer_id", "text"), ("customer_phone", "text"),
    ("customer_email", "text"), ("customer_tier", "text"), ("customer_language", "text"), ("subject", "text"),
    ("description", "text"), ("kind", "text"), ("urgency", "text"), ("impact", "text"), ("order_no", "text"),
    ("product", "text"), ("complaint", "jsonb"), ("caller", "text"), ("received_at", "timestamptz"),
    ("customer_key", "text"), ("product_model", "text"), ("purchase_date", "date"), ("invoice_no", "text"),
    ("service_type", "text"), ("expected_by", "timestamptz"), ("customer_type", "text"), ("warranty", "jsonb"),
)
_NAMES = ", ".join(c for c, _ in _NEW_COLUMNS)


class RegisteredMeanwhile(RuntimeError):
    """A batch's staged ticket found its key (``channel`` + ``external_id`` / ``message_id``) taken by a
    ticket registered after the batch looked: the batch rolls back and each message is handled alone."""


def new_ticket_row(
    *, ticket_no: str, msg: IntakeTicket, received_at: datetime, caller: str | None, message_id: str | None,
    customer_key: str | None = None, customer_type: str | None = None, warranty: dict[str, Any] | None = None,
) -> tuple[Any, ...]:
    """A new ticket's values in ``_NEW_COLUMNS`` order, with its records fields (``records.on_register``:
    ``customer_type``, ``warranty``); JSON columns as text."""
    c = msg.customer
    return (
        ticket_no, msg.channel, msg.external_id, message_id, "new", c.name, c.id, c.phone, c.email, c.tier,
        c.language, msg.subject, msg.description, msg.kind, msg.urgency, msg.impact, msg.order_no, msg.product,
        orjson.dumps(msg.complaint.model_dump(mode="json")).decode() if msg.complaint else None,
        caller, received_at, customer_key, msg.product_model, msg.purchase_date, msg.invoice_no,
        msg.service_type, msg.expected_by, customer_type, orjson.dumps(warranty).decode() if warranty else None,
    )


async def insert_tickets(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> list[asyncpg.Record]:
    """Insert new tickets (``new_ticket_row``s) in one statement and return the rows inserted: a ticket whose
    ``channel`` + ``external_id`` (or + ``message_id``) already has one is left out."""
    arrays = ", ".join(f"${i}::{'text' if t == 'jsonb' else t}[]" for i, (_, t) in enumerate(_NEW_COLUMNS, start=1))
    cols = ", ".join(f"{c}::jsonb" if t == "jsonb" else c for c, t in _NEW_COLUMNS)
    return await conn.fetch(
        f"INSERT INTO {S}.tickets ({_NAMES}) SELECT {cols} FROM unnest({arrays}) AS u({_NAMES})"
        " ON CONFLICT DO NOTHING RETURNING *",
        *([r[i] for r in rows] for i in range(len(_NEW_COLUMNS))))


async def insert_ticket(conn: asyncpg.Connection, **fields: Any) -> asyncpg.Record | None:
    """Insert and return the row (``new_ticket_row``'s fields); None when ``channel`` + ``external_id``
    (or + ``message_id``) has a ticket."""
    inserted = await insert_tickets(conn, [new_ticket_row(**fields)])
    return inserted[0] if inserted else None


async def add_tickets(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> None:
    """A batch's new tickets, at its flush (the unit's staged writer). Its registrations were looked up
    with the batch (``prepare_registrations``); a key taken since, by a replica or by another message of
    the same batch, raises :class:`RegisteredMeanwhile` (each message is then handled alone, where the
    one-row insert finds the duplicate)."""
    got = len(await insert_tickets(conn, rows))
    if got != len(rows):
        raise RegisteredMeanwhile(f"{len(rows) - got} of {len(rows)} tickets were registered meanwhile")


def _duplicates(cols: str, channel: str = "$1", external_id: str = "$2", message_id: str = "$3") -> str:
    """The tickets registered for this channel's ``external_id`` or intake ``message_id`` (SQL
    expressions: parameters, or a batch's columns), an external id match first. Two lookups, each on its
    own unique key, whatever the planner's statistics say: an ``OR`` of the two made a fresh table's plan
    scan every ticket of the channel (1.5 ms a ticket after 2,000). The keys are led by ``external_id``
    and ``message_id`` (migration 0004): led by ``channel``, a plan made on the empty table read the
    external id through the message-id key on ``channel`` alone."""
    return (f"SELECT {cols} FROM ((SELECT * FROM {S}.tickets WHERE channel = {channel} AND external_id = {external_id})"
            f" UNION ALL (SELECT * FROM {S}.tickets WHERE channel = {channel} AND message_id = {message_id})) d"
            f" ORDER BY (d.external_id = {external_id}) IS TRUE DESC LIMIT 1")


async def find_duplicate(
    conn: asyncpg.Connection, *, channel: str, external_id: str | None, message_id: str | None
) -> asyncpg.Record | None:
    """The ticket already registered for this channel's ``external_id`` (or intake ``message_id``)."""
    return await conn.fetchrow(_duplicates("*"), channel, external_id, message_id)


Registration = tuple[date, str, str | None, str | None, str | None, datetime]
"""What registering a ticket looks up: (day, channel, external_id, message_id, customer_key, received_at)."""


async def prepare_registrations(conn: asyncpg.Connection, items: list[Registration]) -> list[asyncpg.Record]:
    """What registering tickets reads, one statement for a batch or a single ticket, a row per item in
    their order: ``duplicate`` (a ticket exists for its ``external_id`` / ``message_id``:
    ``find_duplicate`` has it), else ``serial``, the next number of its day (drawn only for a new
    ticket), and ``returning`` (an earlier ticket has its ``customer_key``; NULL without a key)."""
    days, *cols = (list(c) for c in zip(*items, strict=True))
    return await conn.fetch(
        f"""SELECT u.n, d.ticket_no IS NOT NULL AS duplicate,
                   CASE WHEN d.ticket_no IS NULL THEN nextval(u.seq::regclass) END AS serial,
                   CASE WHEN u.key IS NOT NULL THEN EXISTS (SELECT 1 FROM {S}.tickets e
                        WHERE e.customer_key = u.key AND e.received_at < u.received) END AS returning
            FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])
                 WITH ORDINALITY AS u(seq, channel, ext, mid, key, received, n)
            LEFT JOIN LATERAL ({_duplicates("ticket_no", "u.channel", "u.ext", "u.mid")}) d ON true
            ORDER BY u.n""",
        [f"{S}.serial_{day:%Y%m%d}" for day in days], *cols,
    )


async def get(conn: asyncpg.Connection, *, ticket_no: str, for_update: bool = False) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT * FROM {S}.tickets WHERE ticket_no = $1{lock}", ticket_no)


async def read_contacts(conn: asyncpg.Connection, *, caller: str, ticket_nos: list[str]) -> list[asyncpg.Record]:
    """The tickets of ``ticket_nos`` that exist, each read recorded for ``caller`` (``contact_reads``): one
    statement. One primary-key probe per ticket, whatever the statistics say (the LATERAL ... LIMIT 1):
    ``ticket_no = ANY($1)`` let the generic plan made on a young table scan it, 2.8-3.7 ms a contacts
    lookup in the bench at 2,000 tickets."""
    return await conn.fetch(
        f"WITH t AS (SELECT t.* FROM unnest($1::text[]) AS m(no), LATERAL (SELECT * FROM {S}.tickets x"
        " WHERE x.ticket_no = m.no LIMIT 1) t),"
        f" rec AS (INSERT INTO {S}.contact_reads (caller, ticket_no) SELECT $2, ticket_no FROM t)"
        " SELECT * FROM t", ticket_nos, caller)


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


Routed = tuple[str, int, str | None, str | None, str | None, str | None, str | None]
"""One routing decision: (ticket_no, seq, category, priority, department, assignee, rule)."""


async def apply_routed(conn: asyncpg.Connection, decisions: list[Routed]) -> None:
    """Routing's decisions, in arrival order, exactly as one statement each would apply them, in two
    statements for the lot (the unit's staged writer): the tickets are locked and read, then written.
    A decision applies when its ``seq`` is above the ticket's ``routed_seq`` so far (redelivered or
    overtaken: nothing changes); the first assignee is kept; a new ticket with an assignee becomes
    ``assigned``. Each ticket is reached by one primary-key probe, then its ``ctid`` (locked: stable)."""
    rows = await conn.fetch(
        f"SELECT k.* FROM unnest($1::text[]) WITH ORDINALITY AS u(no, n), LATERAL (SELECT t.ctid AS tid,"
        f" t.ticket_no, t.routed_seq, t.first_assignee, t.status FROM {S}.tickets t WHERE t.ticket_no = u.no"
        " LIMIT 1 FOR UPDATE) k ORDER BY u.n",
        sorted({d[0] for d in decisions}))
    held = {r["ticket_no"]: dict(r) for r in rows}
    changed: dict[str, dict[str, Any]] = {}
    for no, seq, category, priority, department, assignee, rule in decisions:
        t = held.get(no)
        if t is None or seq <= t["routed_seq"]:
            continue
        t.update(category=category, priority=priority, department=department, assignee=assignee, rule=rule,
                 routed_seq=seq)
        if assignee is not None:
            t["first_assignee"] = t["first_assignee"] or assignee
            t["status"] = "assigned" if t["status"] == "new" else t["status"]
        changed[no] = t
    if not changed:
        return
    cols = ("tid", "category", "priority", "department", "assignee", "rule", "routed_seq", "first_assignee", "status")
    types = ("tid", "text", "text", "text", "text", "text", "int", "text", "text")
    await conn.execute(
        f"UPDATE {S}.tickets t SET {', '.join(f'{c} = v.{c}' for c in cols[1:])}, updated_at = now()"
        f" FROM unnest({', '.join(f'${i}::{ty}[]' for i, ty in enumerate(types, start=1))}) AS v({', '.join(cols)})"
        " WHERE t.ctid = v.tid",
        *([t[c] for t in changed.values()] for c in cols))


async def record_events(conn: asyncpg.Connection, events: list[CloudEvent]) -> None:
    """Add events to their tickets' timelines (one statement): events already there are skipped; an event
    about a ticket intake never registered raises ``DomainError`` (its batch is then handled one by one)."""
    inserted = await conn.fetch(
        f"INSERT INTO {S}.timeline (event_id, ticket_no, type, source, seq, time, data)"
        " SELECT u.* FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::timestamptz[],"
        f" $7::jsonb[]) AS u(event_id, ticket_no, type, source, seq, time, data)"
        # each event's ticket by one primary-key probe (the LIMIT keeps it a nested loop): a semi-join, or
        # `= ANY`, let the plan made on the young table hash-join a full scan of the tickets per batch
        f" CROSS JOIN LATERAL (SELECT 1 FROM {S}.tickets t WHERE t.ticket_no = u.ticket_no LIMIT 1) known"
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
        raise DomainError("data.ticket_no", f"unknown ticket {min(missing)}")


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

async def count_contact_read(conn: asyncpg.Connection, *, caller: str, reads: int = 1) -> int:
    """Count ``reads`` reads in ``caller``'s current one-minute window; returns the window's reads so far
    (older windows are dropped as they pass, in the same statement: they are other rows than the window's)."""
    return await conn.fetchval(
        f"WITH gone AS (DELETE FROM {S}.contact_rate WHERE caller = $1 AND window_start < date_trunc('minute', now()))"
        f" INSERT INTO {S}.contact_rate AS r (caller, window_start, reads) VALUES ($1, date_trunc('minute', now()), $2)"
        " ON CONFLICT (caller, window_start) DO UPDATE SET reads = r.reads + EXCLUDED.reads RETURNING reads",
        caller, reads,
    )


async def contact_reads(conn: asyncpg.Connection, *, ticket_no: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT caller, ticket_no, read_at FROM {S}.contact_reads WHERE ticket_no = $1 ORDER BY id", ticket_no)


# ---- personal data (privacy): quotas, erasure, export, retention ----

async def use_quota(conn: asyncpg.Connection, *, caller: str, window_start: datetime) -> int:
    """Count one use of ``caller``'s quota in the window; returns the uses so far (this one included)."""
    return await conn.fetchval(
        f"INSERT INTO {S}.quota_usage AS q (caller, window_start, used) VALUES ($1, $2, 1)"
        " ON CONFLICT (caller, window_start) DO UPDATE SET used = q.used + 1 RETURNING used",
        caller, window_start,
    )


async def prune_quota(conn: asyncpg.Connection, *, before: datetime) -> None:
    await conn.execute(f"DELETE FROM {S}.quota_usage WHERE window_start < $1", before)


async def customer_tickets(conn: asyncpg.Connection, *, customer_key: str, for_update: bool = False
                           ) -> list[asyncpg.Record]:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetch(
        f"SELECT * FROM {S}.tickets WHERE customer_key = $1 ORDER BY received_at{lock}", customer_key)


async def retention_due(conn: asyncpg.Connection, *, closed_before: datetime, limit: int) -> list[asyncpg.Record]:
    """Closed tickets past retention whose contacts are still there, locked (replicas skip them)."""
    return await conn.fetch(
        f"SELECT * FROM {S}.tickets WHERE closed_at < $1 AND contact_purged_at IS NULL"
        " ORDER BY closed_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        closed_before, limit,
    )


_PERSONAL = {"customer_name", "customer_id", "customer_phone", "customer_email", "external_id", "subject",
             "description", "complaint", "contact_purged_at", "erased_at", "appointment"}


async def scrub_ticket(conn: asyncpg.Connection, *, ticket_no: str, **fields: Any) -> None:
    """Overwrite a ticket's personal columns (``complaint`` as a JSON-ready value)."""
    if unknown := set(fields) - _PERSONAL:
        raise ValueError(f"not personal: {unknown}")
    for name in ("complaint", "appointment"):  # JSON columns (appointment: records' on-site visit)
        if name in fields and fields[name] is not None:
            fields[name] = orjson.dumps(fields[name]).decode()
    cols = list(fields)
    sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(cols, start=2))
    await conn.execute(f"UPDATE {S}.tickets SET {sets}, updated_at = now() WHERE ticket_no = $1",
                       ticket_no, *(fields[c] for c in cols))


async def timeline_of(conn: asyncpg.Connection, *, ticket_nos: list[str]) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT event_id, ticket_no, type, source, seq, time, data FROM {S}.timeline"
        " WHERE ticket_no = ANY($1) ORDER BY ticket_no, time, source, seq", ticket_nos)


async def set_timeline_data(conn: asyncpg.Connection, *, event_id: str, data: Any) -> None:
    await conn.execute(f"UPDATE {S}.timeline SET data = $2::jsonb WHERE event_id = $1",
                       event_id, orjson.dumps(data).decode())


async def outbox_of(conn: asyncpg.Connection, *, ticket_nos: list[str]) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT id, body FROM {S}.outbox WHERE ticket_no = ANY($1)", ticket_nos)


async def set_outbox_body(conn: asyncpg.Connection, *, row_id: int, body: bytes) -> None:
    await conn.execute(f"UPDATE {S}.outbox SET body = $2 WHERE id = $1", row_id, body)


async def add_unticketed_event(conn: asyncpg.Connection, *, event: CloudEvent) -> None:
    """Stage an event about no one ticket (``customer.erased``) for the outbox relay."""
    await conn.execute(f"INSERT INTO {S}.outbox (event_id, routing_key, ticket_no, body) VALUES ($1, $2, NULL, $3)",
                       event.id, event.type, event.to_bytes())
# ---- records (#14): service-order fields, customer history, diagnosis / appointment / complaint records ----

_UPDATABLE.update({"cause", "sub_item", "diagnosis", "appointment", "verification", "determination", "revisit"})


async def has_earlier_ticket(conn: asyncpg.Connection, *, customer_key: str, received_at: datetime) -> bool:
    return bool(await conn.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM {S}.tickets WHERE customer_key = $1 AND received_at < $2)",
        customer_key, received_at))


async def failed_repairs(
    conn: asyncpg.Connection, *, customer_key: str | None, invoice_no: str | None, product_model: str | None,
    received_at: datetime,
) -> int:
    """Earlier repairs of the same unit (same invoice, else same customer and model) that did not hold:
    each resolved repair ticket of the unit (it failed again: this ticket) plus each reopen of one."""
    if not invoice_no and not (customer_key and product_model):
        return 0
    return int(await conn.fetchval(
        f"""SELECT coalesce(sum(1 + t.reopened), 0) FROM {S}.tickets t
            WHERE t.received_at < $4 AND t.resolved_at IS NOT NULL
              AND (t.service_type = 'repair' OR t.warranty->>'entitlement' = 'repair' OR t.diagnosis IS NOT NULL)
              AND (($1::text IS NOT NULL AND t.invoice_no = $1)
                   OR ($1::text IS NULL AND t.customer_key = $2 AND t.product_model = $3))""",
        invoice_no, customer_key, product_model, received_at))
