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


async def lock_ticket(conn: asyncpg.Connection, *, ticket_no: str) -> Ticket | None:
    """The ticket's row, locked until commit (serialises events about one ticket across replicas)."""
    row = await conn.fetchrow(
        f"SELECT ticket_no, received_at, channel, tier, priority, category, waiting, closed, intake_seq, expected_by"
        f" FROM {S}.tickets WHERE ticket_no = $1 FOR UPDATE", ticket_no)
    return Ticket(**dict(row)) if row else None


async def save_ticket(conn: asyncpg.Connection, *, ticket: Ticket) -> None:
    await conn.execute(
        f"""INSERT INTO {S}.tickets AS t (ticket_no, received_at, channel, tier, priority, category, waiting, closed,
                intake_seq, expected_by)
            VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)
            ON CONFLICT (ticket_no) DO UPDATE SET received_at = $2, channel = $3, tier = $4, priority = $5,
                category = $6, waiting = $7, closed = $8, intake_seq = $9, expected_by = $10, updated_at = now()""",
        ticket.ticket_no, ticket.received_at, ticket.channel, ticket.tier, ticket.priority, ticket.category,
        ticket.waiting, ticket.closed, ticket.intake_seq, ticket.expected_by,
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


async def lock_clocks(conn: asyncpg.Connection, *, ticket_no: str) -> dict[str, Clock]:
    rows = await conn.fetch(
        f"SELECT {', '.join(_CLOCK_COLS)} FROM {S}.clocks WHERE ticket_no = $1 ORDER BY metric FOR UPDATE", ticket_no)
    return {r["metric"]: _clock(r) for r in rows}


async def save_clocks(conn: asyncpg.Connection, clocks: Iterable[Clock]) -> None:
    cols = ", ".join(_CLOCK_COLS)
    params = ", ".join(f"${i}" for i in range(1, len(_CLOCK_COLS) + 1))
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in _CLOCK_COLS[2:])
    await conn.executemany(
        f"INSERT INTO {S}.clocks ({cols}) VALUES ({params})"
        f" ON CONFLICT (ticket_no, metric) DO UPDATE SET {sets}, updated_at = now()",
        [_args(c) for c in clocks],
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


async def ensure_ticket(conn: asyncpg.Connection, *, ticket_no: str) -> None:
    """A row for the ticket (its lock serialises the ticket's events)."""
    await conn.execute(f"INSERT INTO {S}.tickets (ticket_no) VALUES ($1) ON CONFLICT DO NOTHING", ticket_no)
