"""The SLA service's SQL — the only module that talks to the ``sla`` schema."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import asyncpg
import orjson

from services.sla.domain import Clock
from services.sla.lifecycle import Ticket

S = "sla"
_CLOCK_COLS = ("ticket_no", "metric", "priority", "policy", "calendar", "target_s", "started_at", "segments",
               "open_since", "warned", "breached", "outcome", "stopped_at", "due_at", "warn_at", "fire_at")


_TICKET_COLS = ("ticket_no", "received_at", "channel", "tier", "priority", "category", "waiting", "closed",
                "intake_seq", "expected_by")


async def lock_tickets(conn: asyncpg.Connection, *, create: list[str], read: list[str]) -> dict[str, Ticket]:
    """The tickets' rows, locked until commit (serialises events about one ticket across replicas), in
    ticket order: ``create``'s made first (a stub) if missing (the lock needs a row), ``read``'s where
    they exist; one statement for a batch or one ticket. One primary-key probe per ticket."""
    cols = ", ".join(_TICKET_COLS)
    create = sorted(set(create))
    read = sorted(set(read) - set(create))
    rows = await conn.fetch(
        f"""WITH made AS (INSERT INTO {S}.tickets AS t (ticket_no) SELECT * FROM unnest($1::text[])
                          ON CONFLICT (ticket_no) DO UPDATE SET ticket_no = t.ticket_no RETURNING {cols})
            SELECT * FROM made
            UNION ALL
            SELECT x.* FROM unnest($2::text[]) WITH ORDINALITY AS m(no, n),
                LATERAL (SELECT {cols} FROM {S}.tickets k WHERE k.ticket_no = m.no LIMIT 1 FOR UPDATE) x""",
        create, read,
    )
    return {r["ticket_no"]: Ticket(**dict(r)) for r in rows}


async def lock_clocks(conn: asyncpg.Connection, *, ticket_nos: list[str]) -> dict[str, dict[str, Clock]]:
    """The tickets' clocks, locked, in ticket order: one statement (every ticket asked for is in the
    result, those without clocks with none)."""
    nos = sorted(set(ticket_nos))
    rows = await conn.fetch(
        f"SELECT c.* FROM unnest($1::text[]) WITH ORDINALITY AS m(no, n),"
        f" LATERAL (SELECT {', '.join(_CLOCK_COLS)} FROM {S}.clocks k WHERE k.ticket_no = m.no"
        f" ORDER BY k.metric FOR UPDATE) c ORDER BY m.n, c.metric",
        nos,
    )
    out: dict[str, dict[str, Clock]] = {no: {} for no in nos}
    for r in rows:
        out[r["ticket_no"]][r["metric"]] = _clock(r)
    return out


_TICKET_TYPES = ("text", "timestamptz", "text", "text", "text", "text", "bool", "bool", "int", "timestamptz")


async def save_tickets(conn: asyncpg.Connection, tickets: list[Ticket]) -> None:
    """Insert or update the tickets: one multi-row statement (one row a ticket)."""
    if not tickets:
        return
    arrays = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(_TICKET_TYPES))
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in _TICKET_COLS[1:])
    await conn.execute(
        f"INSERT INTO {S}.tickets AS t ({', '.join(_TICKET_COLS)}) SELECT * FROM unnest({arrays})"
        f" ON CONFLICT (ticket_no) DO UPDATE SET {sets}, updated_at = now()",
        *([getattr(t, c) for t in tickets] for c in _TICKET_COLS),
    )


def _clock(row: asyncpg.Record) -> Clock:
    fields = dict(row)
    fields["segments"] = tuple(
        (datetime.fromtimestamp(a, UTC), datetime.fromtimestamp(b, UTC)) for a, b in orjson.loads(row["segments"])
    )
    return Clock(**fields)


def _args(c: Clock) -> tuple:
    segments = orjson.dumps([[a.timestamp(), b.timestamp()] for a, b in c.segments]).decode()
    return (c.ticket_no, c.metric, c.priority, c.policy, c.calendar, c.target_s, c.started_at, segments,
            c.open_since, c.warned, c.breached, c.outcome, c.stopped_at, c.due_at, c.warn_at, c.fire_at)


_CLOCK_TYPES = ("text", "text", "text", "text", "text", "float8", "timestamptz", "jsonb", "timestamptz", "bool",
                "bool", "text", "timestamptz", "timestamptz", "timestamptz", "timestamptz")


async def save_clocks(conn: asyncpg.Connection, clocks: Iterable[Clock]) -> None:
    """Insert or update the clocks: one multi-row statement, whatever their number."""
    rows = [_args(c) for c in clocks]
    if not rows:
        return
    cols = ", ".join(_CLOCK_COLS)
    arrays = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(_CLOCK_TYPES))
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in _CLOCK_COLS[2:])
    await conn.execute(
        f"INSERT INTO {S}.clocks ({cols}) SELECT * FROM unnest({arrays})"
        f" ON CONFLICT (ticket_no, metric) DO UPDATE SET {sets}, updated_at = now()",
        *([r[i] for r in rows] for i in range(len(_CLOCK_COLS))),
    )


async def claim_due(conn: asyncpg.Connection, *, limit: int) -> list[tuple[Clock, datetime]]:
    """Due timers, oldest first, locked for this transaction; rows another replica holds are skipped.

    Returns each clock with the database's clock reading, so lateness is measured on one clock.
    """
    rows = await conn.fetch(
        f"SELECT {', '.join(_CLOCK_COLS)}, clock_timestamp() AS now FROM {S}.clocks"
        # now() (the transaction's start, stable) and not clock_timestamp() (volatile) in the condition,
        # so it is an index condition: a volatile one would be checked against every open timer
        " WHERE fire_at <= now() ORDER BY fire_at LIMIT $1 FOR UPDATE SKIP LOCKED", limit)
    return [(_clock({k: v for k, v in r.items() if k != "now"}), r["now"]) for r in rows]  # type: ignore[arg-type]


async def seconds_to_next(conn: asyncpg.Connection) -> float | None:
    """Seconds until the earliest timer (negative when one is already due), ``None`` when none."""
    return await conn.fetchval(
        f"SELECT extract(epoch FROM min(fire_at) - clock_timestamp())::float8 FROM {S}.clocks"
        " WHERE fire_at IS NOT NULL")


async def open_timer_counts(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT metric, count(*) AS n FROM {S}.clocks WHERE fire_at IS NOT NULL GROUP BY metric")


async def clocks_of(conn: asyncpg.Connection, *, ticket_no: str) -> list[Clock]:
    rows = await conn.fetch(
        f"SELECT {', '.join(_CLOCK_COLS)} FROM {S}.clocks WHERE ticket_no = $1 ORDER BY metric", ticket_no)
    return [_clock(r) for r in rows]
