"""Notification's SQL — the only module that talks to the ``notification`` schema."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from services.notification.domain import FACT_FIELDS, Planned

S = "notification"
_COLUMNS = ("id", "event_id", "event_type", "ticket_no", "recipient", "rate_key", "channel", "template",
            "language", "urgent", "quiet", "context", "attempts", "last_attempt_at")
_ROW = ", ".join(_COLUMNS)


def _row(r: asyncpg.Record) -> dict[str, Any]:
    d = dict(r)
    if isinstance(d.get("context"), str):
        d["context"] = orjson.loads(d["context"])
    return d


# ---- ticket facts ----

async def update_facts(conn: asyncpg.Connection, *, ticket_no: str, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``changes`` (None values leave a fact unchanged… except assignee, which routing may clear)
    into the ticket's facts and return them all."""
    cols = [c for c in changes if c in FACT_FIELDS]
    if cols:
        names = ", ".join(cols)
        params = ", ".join(f"${i + 2}" for i in range(len(cols)))
        sets = ", ".join(
            f"{c} = EXCLUDED.{c}" if c == "assignee" else f"{c} = COALESCE(EXCLUDED.{c}, t.{c})" for c in cols
        )
        row = await conn.fetchrow(  # the merged facts come back from the upsert itself
            f"INSERT INTO {S}.tickets AS t (ticket_no, {names}) VALUES ($1, {params})"
            f" ON CONFLICT (ticket_no) DO UPDATE SET {sets}, updated_at = now() RETURNING *",
            ticket_no, *(changes[c] for c in cols),
        )
    else:
        row = await conn.fetchrow(f"SELECT * FROM {S}.tickets WHERE ticket_no = $1", ticket_no)
    return dict(row) if row else {}


async def lock_facts(conn: asyncpg.Connection, *, ticket_nos: Sequence[str],
                     create: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """The facts of ``ticket_nos`` (and ``create``), locked for this transaction: a batch reads them once
    (``Tx.memo``) and writes what its events changed once (``save_facts``). One statement: the rows of
    ``create`` that are missing are made (``ticket_no`` only: every fact NULL, ``updated_at`` now(), as an
    upsert would leave the columns its event does not set) and come back from the insert, the rows that
    existed come back locked; each part takes its locks in ticket order, one primary-key probe per ticket,
    whatever the statistics say (the LATERAL ... LIMIT 1). The read does not see what the insert made (one
    snapshot), and a row a concurrent transaction committed after that snapshot is in neither part: such a
    ticket is not held, and the caller falls back to ``update_facts``, which locks it."""
    rows = await conn.fetch(
        f"WITH made AS (INSERT INTO {S}.tickets (ticket_no) SELECT c.no FROM unnest($2::text[])"
        f"   WITH ORDINALITY AS c(no, n) ORDER BY c.n ON CONFLICT (ticket_no) DO NOTHING RETURNING *)"
        f" SELECT t.* FROM unnest($1::text[]) WITH ORDINALITY AS m(no, n),"
        f" LATERAL (SELECT * FROM {S}.tickets x WHERE x.ticket_no = m.no LIMIT 1 FOR UPDATE) t"
        " UNION ALL SELECT * FROM made",
        sorted(set(ticket_nos) | set(create)), sorted(set(create)),
    )
    return {r["ticket_no"]: dict(r) for r in rows}


_FACT_TYPES = {"has_phone": "bool", "has_email": "bool", "closed_at": "timestamptz"}


async def save_facts(conn: asyncpg.Connection, facts: list[dict[str, Any]]) -> None:
    """Write back the facts of tickets this transaction holds locked (``lock_facts`` or ``update_facts``),
    as they are at its end: one statement for the batch (a unit's staged writer)."""
    sets = ", ".join(f"{c} = v.{c}" for c in FACT_FIELDS)
    arrays = ", ".join(f"${i}::{_FACT_TYPES.get(c, 'text')}[]" for i, c in enumerate(FACT_FIELDS, start=2))
    await conn.execute(
        f"UPDATE {S}.tickets t SET {sets}, updated_at = now()"
        f" FROM unnest($1::text[], {arrays}) AS v(ticket_no, {', '.join(FACT_FIELDS)})"
        " WHERE t.ticket_no = v.ticket_no",
        [f["ticket_no"] for f in facts], *([f.get(c) for f in facts] for c in FACT_FIELDS),
    )


def merge_facts(facts: dict[str, Any], changes: Mapping[str, Any]) -> bool:
    """``update_facts``' rule applied in memory (None leaves a fact unchanged, except assignee, which
    routing may clear); True when ``changes`` held a fact."""
    cols = [c for c in changes if c in FACT_FIELDS]
    for c in cols:
        if c == "assignee" or changes[c] is not None:
            facts[c] = changes[c]
    return bool(cols)


# ---- deliveries: planning ----

def delivery_row(*, event_id: str, event_type: str, ticket_no: str | None, planned: Planned,
                 context: Mapping[str, Any], due: datetime) -> tuple[Any, ...]:
    """One row for ``add_deliveries`` (in its column order)."""
    return (event_id, event_type, ticket_no, planned.recipient, planned.rate_key, planned.channel, planned.template,
            planned.language, planned.urgent, planned.quiet, orjson.dumps(context).decode(), due)


async def add_deliveries(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> None:
    """Insert planned deliveries in one statement, in planning order; one that (event, recipient, channel)
    already has (a redelivery) is skipped."""
    cols = list(zip(*rows, strict=True))
    await conn.execute(
        f"""INSERT INTO {S}.deliveries (event_id, event_type, ticket_no, recipient, rate_key, channel, template,
                language, urgent, quiet, context, next_attempt_at)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                $8::text[], $9::bool[], $10::bool[], $11::jsonb[], $12::timestamptz[])
            ON CONFLICT (event_id, recipient, channel) DO NOTHING""",
        *(list(c) for c in cols),
    )


# ---- deliveries: the worker's claim ----

async def lock_due(conn: asyncpg.Connection, *, now: datetime, limit: int
                   ) -> tuple[list[dict[str, Any]], datetime | None]:
    """Due pending rows, locked for this transaction (rows other workers hold are skipped), and when the
    earliest other pending row is due (None: there is none): the claim and the worker's next wake-up in
    one statement."""
    rows = await conn.fetch(
        f"""WITH due AS (SELECT {_ROW}, next_attempt_at AS due_at FROM {S}.deliveries
                         WHERE status = 'pending' AND next_attempt_at <= $1
                         ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED)
            SELECT due.*, (SELECT min(o.next_attempt_at) FROM {S}.deliveries o WHERE o.status = 'pending'
                           AND o.id NOT IN (SELECT id FROM due)) AS next_other
            FROM (SELECT 1) one LEFT JOIN due ON true ORDER BY due.due_at""",
        now, limit,
    )
    return [_row({c: r[c] for c in _COLUMNS}) for r in rows if r["id"] is not None], rows[0]["next_other"]


async def lock_rate_keys(conn: asyncpg.Connection, *, rate_keys: list[str]) -> None:
    """Serialise rate-limit decisions for these recipients across workers (until commit): one statement,
    the locks taken in the order given (callers sort, so two workers never wait on each other in a cycle)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1 || k)) FROM unnest($2::text[]) AS u(k)",
                       f"{S}.rate:", rate_keys)


async def attempts_in_window(conn: asyncpg.Connection, *, rate_keys: list[str],
                             since: datetime) -> dict[str, list[tuple[int, datetime]]]:
    """The deliveries to each of ``rate_keys`` attempted since ``since`` (id, when): one statement, one
    index range per key. Read after ``lock_rate_keys`` returned, in a statement of its own, so what a
    worker that held a key committed meanwhile is seen. A window holds at most about the key's limit."""
    rows = await conn.fetch(
        f"SELECT d.rate_key, d.id, d.last_attempt_at FROM unnest($1::text[]) AS u(k)"
        f" CROSS JOIN LATERAL (SELECT rate_key, id, last_attempt_at FROM {S}.deliveries"
        "   WHERE rate_key = u.k AND last_attempt_at > $2) d",
        rate_keys, since,
    )
    out: dict[str, list[tuple[int, datetime]]] = {k: [] for k in rate_keys}
    for r in rows:
        out[r["rate_key"]].append((r["id"], r["last_attempt_at"]))
    return out


async def hold(conn: asyncpg.Connection, holds: list[tuple[int, datetime, str]]) -> None:
    """Hold claimed rows back, (id, until, reason) each (quiet hours, the recipient's rate limit): one
    statement for the claim. The rows are locked (``lock_due``): a primary-key probe, then the ``ctid``."""
    if not holds:
        return
    ids, until, reasons = (list(c) for c in zip(*holds, strict=True))
    await conn.execute(
        f"UPDATE {S}.deliveries d SET next_attempt_at = x.until, held = x.reason"
        f" FROM (SELECT l.tid, u.until, u.reason FROM unnest($1::bigint[], $2::timestamptz[], $3::text[])"
        f"       AS u(id, until, reason) CROSS JOIN LATERAL"
        f"       (SELECT g.ctid AS tid FROM {S}.deliveries g WHERE g.id = u.id LIMIT 1) l) x"
        " WHERE d.ctid = x.tid",
        ids, until, reasons,
    )


async def start_attempts(conn: asyncpg.Connection, *, ids: list[int], now: datetime,
                         lease_until: datetime) -> dict[int, int]:
    """Count the attempt and lease each claimed row (one statement): if this worker dies, the rows are
    due again at the lease end. Returns id -> the attempt now counted. The rows are locked (``lock_due``),
    so each is reached by a primary-key probe and then its ``ctid``, whatever the statistics of a young
    table say."""
    rows = await conn.fetch(
        f"UPDATE {S}.deliveries d SET attempts = d.attempts + 1, last_attempt_at = $2, next_attempt_at = $3,"
        " held = NULL"
        f" FROM (SELECT l.tid FROM unnest($1::bigint[]) AS u(id) CROSS JOIN LATERAL"
        f"       (SELECT g.ctid AS tid FROM {S}.deliveries g WHERE g.id = u.id LIMIT 1) l) x"
        " WHERE d.ctid = x.tid RETURNING d.id, d.attempts",
        ids, now, lease_until,
    )
    return {r["id"]: r["attempts"] for r in rows}


# ---- deliveries: outcomes ----


@dataclass(frozen=True)
class Outcome:
    """One attempt's result: ``sent``, ``retry`` (``next_at``) or ``failed`` (final)."""

    delivery_id: int
    attempt: int
    outcome: str
    at: datetime
    recipient_masked: str | None
    duration_ms: int
    error: str | None = None
    next_at: datetime | None = None


async def record_outcomes(conn: asyncpg.Connection, outcomes: list[Outcome]) -> None:
    """Each attempt's outcome on its delivery and in the attempt log: one update and one insert for the
    lot. A row is reached by a primary-key probe and then its ``ctid``, whatever the statistics of a
    young table say; a row that changed since it was probed (a concurrent erasure) is missed that way
    and written again by id."""
    done = await _update_outcomes(conn, outcomes, by_ctid=True)
    if missed := [x for x in outcomes if x.delivery_id not in done]:
        await _update_outcomes(conn, missed, by_ctid=False)
    o = outcomes
    await conn.execute(
        f"INSERT INTO {S}.attempts (delivery_id, attempt, at, outcome, error, duration_ms)"
        " SELECT * FROM unnest($1::bigint[], $2::int[], $3::timestamptz[], $4::text[], $5::text[], $6::int[])"
        " ON CONFLICT DO NOTHING",
        [x.delivery_id for x in o], [x.attempt for x in o], [x.at for x in o], [x.outcome for x in o],
        [x.error for x in o], [x.duration_ms for x in o])


async def _update_outcomes(conn: asyncpg.Connection, o: list[Outcome], *, by_ctid: bool) -> set[int]:
    """sent: status sent, ``sent_at``, the error cleared; retry: ``next_attempt_at``, held ``retry``;
    failed: status failed, ``failed_at``, no longer held. Returns the ids it updated."""
    reach = (f" CROSS JOIN LATERAL (SELECT g.ctid AS tid FROM {S}.deliveries g WHERE g.id = u.id LIMIT 1) l) x"
             " WHERE d.ctid = x.tid" if by_ctid else ") x WHERE d.id = x.id")
    rows = await conn.fetch(
        f"UPDATE {S}.deliveries d SET"
        " status = CASE x.outcome WHEN 'sent' THEN 'sent' WHEN 'failed' THEN 'failed' ELSE d.status END,"
        " sent_at = CASE WHEN x.outcome = 'sent' THEN x.at ELSE d.sent_at END,"
        " failed_at = CASE WHEN x.outcome = 'failed' THEN x.at ELSE d.failed_at END,"
        " next_attempt_at = CASE WHEN x.outcome = 'retry' THEN x.next_at ELSE d.next_attempt_at END,"
        " held = CASE x.outcome WHEN 'retry' THEN 'retry' WHEN 'failed' THEN NULL ELSE d.held END,"
        " last_error = x.error,"
        " recipient_masked = CASE WHEN x.outcome = 'sent' THEN x.masked"
        "                    ELSE COALESCE(x.masked, d.recipient_masked) END"
        f" FROM (SELECT u.*{', l.tid' if by_ctid else ''} FROM unnest($1::bigint[], $2::text[], $3::timestamptz[],"
        f" $4::timestamptz[], $5::text[], $6::text[]) AS u(id, outcome, at, next_at, error, masked){reach}"
        " RETURNING d.id",
        [x.delivery_id for x in o], [x.outcome for x in o], [x.at for x in o], [x.next_at for x in o],
        [x.error if x.outcome != "sent" else None for x in o], [x.recipient_masked for x in o])
    return {r["id"] for r in rows}


# ---- dead letters ----

async def lock_undead(conn: asyncpg.Connection, *, limit: int) -> list[asyncpg.Record]:
    """Failed deliveries not yet dead-lettered, locked (a crash between the two is repaired here)."""
    return await conn.fetch(
        f"SELECT id, event_id, event_type, ticket_no, recipient_masked, channel, template, attempts, last_error,"
        f" failed_at FROM {S}.deliveries WHERE status = 'failed' AND dead_lettered_at IS NULL"
        " ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit,
    )


async def mark_dead_lettered(conn: asyncpg.Connection, *, ids: list[int], now: datetime) -> None:
    await conn.execute(f"UPDATE {S}.deliveries SET dead_lettered_at = $2 WHERE id = ANY($1)", ids, now)


# ---- reads ----

async def status_counts(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT channel, status, count(*) AS n FROM {S}.deliveries GROUP BY channel, status"
    )


async def list_deliveries(conn: asyncpg.Connection, *, ticket_no: str | None, status: str | None,
                          limit: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"""SELECT d.id, d.event_id, d.event_type, d.ticket_no, d.recipient, d.recipient_masked, d.channel,
                   d.template, d.status, d.attempts, d.held, d.next_attempt_at, d.last_error, d.created_at,
                   d.sent_at, d.failed_at, d.dead_lettered_at,
                   COALESCE((SELECT json_agg(json_build_object('attempt', a.attempt, 'at', a.at,
                        'outcome', a.outcome, 'error', a.error, 'duration_ms', a.duration_ms) ORDER BY a.attempt)
                     FROM {S}.attempts a WHERE a.delivery_id = d.id), '[]') AS log
            FROM {S}.deliveries d
            WHERE ($1::text IS NULL OR d.ticket_no = $1) AND ($2::text IS NULL OR d.status = $2)
            ORDER BY d.id DESC LIMIT $3""",
        ticket_no, status, limit,
    )
    out = []
    for r in rows:
        d = dict(r)
        d["log"] = orjson.loads(d["log"]) if isinstance(d["log"], str) else d["log"]
        out.append(d)
    return out


# ---- personal data (privacy): erasure, export, retention ----

async def customer_tickets(conn: asyncpg.Connection, *, customer_key: str, lock: bool = True) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT * FROM {S}.tickets WHERE customer_key = $1 ORDER BY ticket_no"
                            f"{' FOR UPDATE' if lock else ''}", customer_key)


async def retention_due(conn: asyncpg.Connection, *, closed_before: datetime, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT * FROM {S}.tickets WHERE closed_at < $1 AND contact_purged_at IS NULL"
        " ORDER BY closed_at LIMIT $2 FOR UPDATE SKIP LOCKED", closed_before, limit)


async def forget_ticket_customer(conn: asyncpg.Connection, *, ticket_nos: list[str], column: str,
                                 now: datetime) -> None:
    """The ticket facts keep no customer id; ``column`` (erased_at / contact_purged_at) says when."""
    if column not in ("erased_at", "contact_purged_at"):
        raise ValueError(column)
    await conn.execute(f"UPDATE {S}.tickets SET customer_id = NULL, {column} = $2, updated_at = now()"
                       " WHERE ticket_no = ANY($1)", ticket_nos, now)


async def contexts_of(conn: asyncpg.Connection, *, ticket_nos: list[str]) -> list[dict[str, Any]]:
    rows = await conn.fetch(f"SELECT id, context FROM {S}.deliveries WHERE ticket_no = ANY($1)", ticket_nos)
    return [_row(r) for r in rows]


async def set_context(conn: asyncpg.Connection, *, delivery_id: int, context: Any) -> None:
    await conn.execute(f"UPDATE {S}.deliveries SET context = $2::jsonb WHERE id = $1",
                       delivery_id, orjson.dumps(context).decode())


async def cancel_pending(conn: asyncpg.Connection, *, ticket_nos: list[str], now: datetime, reason: str) -> int:
    """Pending customer deliveries of erased tickets end as failed (never dead-lettered: nothing to replay)."""
    status = await conn.execute(
        f"UPDATE {S}.deliveries SET status = 'failed', failed_at = $2, last_error = $3, held = NULL,"
        " dead_lettered_at = $2 WHERE ticket_no = ANY($1) AND status = 'pending' AND recipient = 'customer'",
        ticket_nos, now, reason)
    return int(status.split()[-1])


async def export_deliveries(conn: asyncpg.Connection, *, ticket_nos: list[str]) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"""SELECT d.*, COALESCE((SELECT json_agg(json_build_object('attempt', a.attempt, 'at', a.at,
                        'outcome', a.outcome, 'error', a.error) ORDER BY a.attempt)
                     FROM {S}.attempts a WHERE a.delivery_id = d.id), '[]') AS log
            FROM {S}.deliveries d WHERE d.ticket_no = ANY($1) ORDER BY d.id""", ticket_nos)
    out = []
    for r in rows:
        d = _row(r)
        d["log"] = orjson.loads(d["log"]) if isinstance(d["log"], str) else d["log"]
        out.append(d)
    return out
