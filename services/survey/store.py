"""Survey's SQL — the only module that talks to the ``survey`` schema."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg

S = "survey"


async def lock_ticket(conn: asyncpg.Connection, *, ticket_no: str) -> asyncpg.Record:
    """The ticket's row, locked until commit (a stub is made when ``ticket.created`` is still to come),
    so one ticket's events are applied one at a time whatever order they arrive in."""
    return await conn.fetchrow(  # the upsert takes the row lock; one statement for stub and lock
        f"INSERT INTO {S}.tickets AS t (ticket_no) VALUES ($1)"
        " ON CONFLICT (ticket_no) DO UPDATE SET ticket_no = t.ticket_no RETURNING *", ticket_no)


class Customer(NamedTuple):
    """What ``ticket.created`` says of a ticket: one row for ``set_customers``."""

    ticket_no: str
    customer_key: str | None
    language: str
    complaint: bool
    created_at: datetime


async def set_customers(conn: asyncpg.Connection, rows: list[Customer]) -> None:
    """Record what ``ticket.created`` says of each ticket (the unit's staged writer: ``u.stage``), in two
    statements at most whatever the number of rows: one upsert of every ticket's row (locking it), then
    one update of the surveys made before it was handled (their ticket's row was a stub: ``lock_ticket``),
    which get the right customer and language too. A ticket named twice (a duplicate ``ticket.created``
    under another event id) keeps its last row, as when handled one after another: one upsert may not
    touch a row twice."""
    last = {r.ticket_no: r for r in rows}
    nos = sorted(last)  # one lock order for the tickets' rows, whatever the arrival order
    cols = list(zip(*(last[no] for no in nos), strict=True))
    written = await conn.fetch(
        f"INSERT INTO {S}.tickets AS t (ticket_no, known, customer_key, language, complaint, created_at)"
        " SELECT no, true, k, l, c, at FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[],"
        " $5::timestamptz[]) WITH ORDINALITY AS r(no, k, l, c, at, n) ORDER BY n"
        " ON CONFLICT (ticket_no) DO UPDATE SET known = true, customer_key = EXCLUDED.customer_key,"
        " language = EXCLUDED.language, complaint = EXCLUDED.complaint, created_at = EXCLUDED.created_at"
        " RETURNING ticket_no, xmax = 0 AS fresh",  # xmax 0: inserted now, so no survey can name it yet
        *(list(c) for c in cols),
    )
    existed = [last[r["ticket_no"]] for r in written if not r["fresh"]]
    if existed:
        await conn.execute(
            f"UPDATE {S}.surveys s SET customer_key = r.k, language = r.l"
            " FROM unnest($1::text[], $2::text[], $3::text[]) AS r(no, k, l) WHERE s.ticket_no = r.no",
            [r.ticket_no for r in existed], [r.customer_key for r in existed], [r.language for r in existed],
        )


async def set_reopened(conn: asyncpg.Connection, *, ticket_no: str, seq: int) -> None:
    await conn.execute(
        f"UPDATE {S}.tickets SET reopened_seq = greatest(reopened_seq, $2) WHERE ticket_no = $1", ticket_no, seq
    )


async def add_history(conn: asyncpg.Connection, *, customer_key: str, ticket_no: str, kind: str, at: datetime) -> None:
    """One history row at once (the answer reads the customer's history right after it)."""
    await add_histories(conn, [(customer_key, ticket_no, kind, at)])


History = tuple[str, str, str, datetime]
"""(customer_key, ticket_no, kind, at): one row of a customer's history, for ``add_histories``."""


async def add_histories(conn: asyncpg.Connection, rows: list[History]) -> None:
    """History rows in one statement, in the order given (the unit's staged writer: ``u.stage``); one
    already there (a redelivery, a duplicate in the same batch) is skipped, the first one kept."""
    cols = list(zip(*rows, strict=True))
    await conn.execute(
        f"INSERT INTO {S}.customer_history (customer_key, ticket_no, kind, at)"
        " SELECT k, no, kind, at FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])"
        " WITH ORDINALITY AS r(k, no, kind, at, n) ORDER BY n ON CONFLICT DO NOTHING",
        *(list(c) for c in cols),
    )


async def history(conn: asyncpg.Connection, *, customer_key: str, since: datetime) -> list[tuple[str, datetime]]:
    rows = await conn.fetch(
        f"SELECT ticket_no, at FROM {S}.customer_history WHERE customer_key = $1 AND at >= $2",
        customer_key, since,
    )
    return [(r["ticket_no"], r["at"]) for r in rows]


async def insert_survey(
    conn: asyncpg.Connection, *, ticket_no: str, token: str, language: str, customer_key: str | None,
    complaint: bool, resolution_event: str, resolution_seq: int, resolved_at: datetime, send_at: datetime,
) -> asyncpg.Record | None:
    """A scheduled survey; None when the ticket already has a live one (or this resolution has one)."""
    return await conn.fetchrow(
        f"""INSERT INTO {S}.surveys (survey_id, ticket_no, token, status, language, customer_key, complaint,
                resolution_event, resolution_seq, resolved_at, send_at, due_at)
            VALUES ($1, $2, $3, 'scheduled', $4, $5, $6, $7, $8, $9, $10, $10)
            ON CONFLICT DO NOTHING RETURNING *""",
        uuid.uuid4(), ticket_no, token, language, customer_key, complaint, resolution_event, resolution_seq,
        resolved_at, send_at,
    )


_UPDATABLE = {
    "status", "remind_at", "expires_at", "due_at", "sent_at", "reminded_at", "answered_at", "ended_at",
    "cancel_reason", "resolved", "speed", "attitude", "overall", "comment",
}


async def update(conn: asyncpg.Connection, *, survey_id: uuid.UUID, **fields: Any) -> asyncpg.Record:
    if unknown := set(fields) - _UPDATABLE:
        raise ValueError(f"not updatable: {unknown}")
    cols = list(fields)
    sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(cols, start=2))
    return await conn.fetchrow(
        f"UPDATE {S}.surveys SET {sets} WHERE survey_id = $1 RETURNING *", survey_id, *(fields[c] for c in cols)
    )


async def by_token(conn: asyncpg.Connection, *, token: str, for_update: bool = False) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT * FROM {S}.surveys WHERE token = $1{lock}", token)


async def live_for_ticket(conn: asyncpg.Connection, *, ticket_no: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT * FROM {S}.surveys WHERE ticket_no = $1 AND status IN ('scheduled', 'sent') FOR UPDATE", ticket_no
    )


async def for_ticket(conn: asyncpg.Connection, *, ticket_no: str) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT * FROM {S}.surveys WHERE ticket_no = $1 ORDER BY created_at", ticket_no)


async def claim_due(conn: asyncpg.Connection, *, now: datetime, limit: int) -> list[asyncpg.Record]:
    """Rows whose due moment has come, locked for this transaction; other replicas skip them."""
    return await conn.fetch(
        f"SELECT * FROM {S}.surveys WHERE due_at <= $1 ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        now, limit,
    )


async def next_due(conn: asyncpg.Connection) -> datetime | None:
    return await conn.fetchval(f"SELECT min(due_at) FROM {S}.surveys WHERE due_at IS NOT NULL")


async def response_counts(conn: asyncpg.Connection, *, since: datetime) -> tuple[int, int]:
    """(sent, answered) among surveys sent since ``since`` (withdrawn ones are not counted)."""
    row = await conn.fetchrow(
        f"SELECT count(*) FILTER (WHERE status <> 'cancelled') AS sent,"
        f" count(*) FILTER (WHERE status = 'answered') AS answered"
        f" FROM {S}.surveys WHERE sent_at >= $1",
        since,
    )
    return row["sent"], row["answered"]


async def status_counts(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch(f"SELECT status, count(*) AS n FROM {S}.surveys GROUP BY status")
    return {r["status"]: r["n"] for r in rows}


# ---- personal data (privacy): erasure, export, retention ----

async def customer_tickets(conn: asyncpg.Connection, *, customer_key: str) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT * FROM {S}.tickets WHERE customer_key = $1 ORDER BY ticket_no FOR UPDATE",
                            customer_key)


async def erase_surveys(conn: asyncpg.Connection, *, ticket_nos: list[str], now: datetime) -> None:
    """The customer's own words go; the scores (facts for the reviews) stay."""
    await conn.execute(f"UPDATE {S}.surveys SET comment = NULL WHERE ticket_no = ANY($1)", ticket_nos)
    await conn.execute(f"UPDATE {S}.tickets SET erased_at = $2 WHERE ticket_no = ANY($1)", ticket_nos, now)


async def outbox_of(conn: asyncpg.Connection, *, ticket_nos: list[str]) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT id, body FROM {S}.outbox WHERE ticket_no = ANY($1)", ticket_nos)


async def set_outbox_body(conn: asyncpg.Connection, *, row_id: int, body: bytes) -> None:
    await conn.execute(f"UPDATE {S}.outbox SET body = $2 WHERE id = $1", row_id, body)


async def export_rows(conn: asyncpg.Connection, *, customer_key: str) -> dict[str, list[dict[str, Any]]]:
    tickets = await conn.fetch(f"SELECT * FROM {S}.tickets WHERE customer_key = $1 ORDER BY ticket_no",
                               customer_key)
    nos = [t["ticket_no"] for t in tickets]
    surveys = await conn.fetch(f"SELECT * FROM {S}.surveys WHERE ticket_no = ANY($1) ORDER BY created_at", nos)
    history = await conn.fetch(f"SELECT * FROM {S}.customer_history WHERE customer_key = $1 ORDER BY at",
                               customer_key)
    return {"tickets": [dict(r) for r in tickets], "surveys": [dict(r) for r in surveys],
            "history": [dict(r) for r in history]}


async def comments_due(conn: asyncpg.Connection, *, answered_before: datetime, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT survey_id, comment FROM {S}.surveys WHERE answered_at < $1 AND comment IS NOT NULL"
        " AND comment_purged_at IS NULL ORDER BY answered_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        answered_before, limit)


async def set_comment(conn: asyncpg.Connection, *, survey_id: uuid.UUID, comment: str | None, now: datetime) -> None:
    await conn.execute(f"UPDATE {S}.surveys SET comment = $2, comment_purged_at = $3 WHERE survey_id = $1",
                       survey_id, comment, now)
