"""Routing's SQL — the only module that talks to the ``routing`` schema."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import asyncpg

from services.routing.config import AgentSpec, RuleSet

S = "routing"


# ---- configuration ----

async def lock_config(conn: asyncpg.Connection) -> None:
    """Serialise configuration syncs of several replicas (transaction-scoped)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('routing.config'))")


async def latest_config(conn: asyncpg.Connection, *, kind: str, files_only: bool = False) -> asyncpg.Record | None:
    """The current ``kind`` config; ``files_only`` skips changes made over HTTP (source ``http:<caller>``)."""
    return await conn.fetchrow(
        f"SELECT version, sha256, source, loaded_at FROM {S}.config_versions WHERE kind = $1"
        " AND NOT ($2 AND source LIKE 'http:%') ORDER BY id DESC LIMIT 1",
        kind, files_only,
    )


async def record_config(conn: asyncpg.Connection, *, kind: str, version: str, sha256: str, source: str) -> None:
    await conn.execute(
        f"INSERT INTO {S}.config_versions (kind, version, sha256, source) VALUES ($1, $2, $3, $4)",
        kind, version, sha256, source,
    )


async def sync_departments(conn: asyncpg.Connection, *, rules: RuleSet) -> None:
    for name, d in rules.departments.items():
        await conn.execute(
            f"INSERT INTO {S}.departments (name, categories, lead, supervisor, active) VALUES ($1, $2, $3, $4, true)"
            " ON CONFLICT (name) DO UPDATE SET categories = $2, lead = $3, supervisor = $4, active = true",
            name, list(d.categories), d.lead, d.supervisor,
        )
    await conn.execute(f"UPDATE {S}.departments SET active = false WHERE NOT (name = ANY($1))",
                       list(rules.departments))


async def lock_departments(conn: asyncpg.Connection, *, names: Iterable[str | None]) -> None:
    """Row-lock departments (in name order, so two transactions never wait on each other in a cycle):
    every assignment and release in a department runs under this lock."""
    wanted = sorted({n for n in names if n})
    if wanted:
        await conn.execute(
            f"SELECT name FROM {S}.departments WHERE name = ANY($1) ORDER BY name FOR UPDATE", wanted
        )


async def departments(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""SELECT d.name, d.categories, d.lead, d.supervisor,
                   (SELECT count(*) FROM {S}.tickets t WHERE t.department = d.name AND t.state = 'queued') AS queued
            FROM {S}.departments d WHERE d.active ORDER BY d.name"""
    )


# ---- roster ----

async def agents(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT * FROM {S}.agents ORDER BY department, id")


async def get_agent(conn: asyncpg.Connection, *, agent_id: str, for_update: bool = False) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT * FROM {S}.agents WHERE id = $1{lock}", agent_id)


async def upsert_agent(conn: asyncpg.Connection, *, spec: AgentSpec) -> None:
    """Add or update an agent; its current load is kept."""
    await conn.execute(
        f"INSERT INTO {S}.agents (id, name, department, capacity, available, lead) VALUES ($1,$2,$3,$4,$5,$6)"
        " ON CONFLICT (id) DO UPDATE SET name = $2, department = $3, capacity = $4, available = $5, lead = $6,"
        " updated_at = now()",
        spec.id, spec.name, spec.department, spec.capacity, spec.available, spec.lead,
    )


async def remove_agents_except(conn: asyncpg.Connection, *, keep: list[str]) -> list[str]:
    """Delete agents not in ``keep`` that hold nothing; make the others unavailable. Returns the retired."""
    await conn.execute(f"DELETE FROM {S}.agents WHERE NOT (id = ANY($1)) AND load = 0", keep)
    rows = await conn.fetch(
        f"UPDATE {S}.agents SET available = false, updated_at = now() WHERE NOT (id = ANY($1)) RETURNING id", keep
    )
    return [r["id"] for r in rows]


async def update_agent(conn: asyncpg.Connection, *, agent_id: str, available: bool | None,
                       capacity: int | None) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"UPDATE {S}.agents SET available = coalesce($2, available), capacity = coalesce($3, capacity),"
        " updated_at = now() WHERE id = $1 RETURNING *",
        agent_id, available, capacity,
    )


async def agent_can_take(conn: asyncpg.Connection, *, agent_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT * FROM {S}.agents WHERE id = $1 AND available AND load < capacity FOR UPDATE", agent_id
    )


async def take_load(conn: asyncpg.Connection, *, agent_id: str) -> None:
    await conn.execute(
        f"UPDATE {S}.agents SET load = load + 1, last_assigned_at = clock_timestamp() WHERE id = $1", agent_id
    )


async def drop_load(conn: asyncpg.Connection, *, agent_id: str) -> asyncpg.Record | None:
    """One ticket fewer for ``agent_id``; returns the agent (its department) or None if unknown."""
    return await conn.fetchrow(
        f"UPDATE {S}.agents SET load = greatest(load - 1, 0) WHERE id = $1 RETURNING *", agent_id
    )


async def agent_department(conn: asyncpg.Connection, *, agent_id: str | None) -> str | None:
    if not agent_id:
        return None
    return await conn.fetchval(f"SELECT department FROM {S}.agents WHERE id = $1", agent_id)


# ---- tickets ----

_NEW = {"ticket_no": "text", "channel": "text", "tier": "text", "urgency": "text", "impact": "text",
        "complaint": "bool", "category": "text", "priority": "text", "department": "text", "rule": "text",
        "state": "text", "rules_version": "text", "queued_at": "timestamptz"}


async def insert_tickets(conn: asyncpg.Connection, tickets: list[dict[str, Any]]) -> dict[str, asyncpg.Record]:
    """Insert routing's rows for new tickets (``_NEW``'s fields each), one statement for the lot, and
    return them by ticket number (so they need not be read again); a ticket whose row exists (a second
    ``ticket.created``) is left out. Inserted in the order given."""
    cols = list(_NEW)
    rows = await conn.fetch(
        f"INSERT INTO {S}.tickets ({', '.join(cols)})"
        f" SELECT {', '.join(f'u.{c}' for c in cols)} FROM unnest("
        f"{', '.join(f'${i}::{_NEW[c]}[]' for i, c in enumerate(cols, start=1))})"
        f" WITH ORDINALITY AS u({', '.join(cols)}, n) ORDER BY u.n"
        " ON CONFLICT (ticket_no) DO NOTHING RETURNING *",
        *([t[c] for t in tickets] for c in cols),
    )
    return {r["ticket_no"]: r for r in rows}


async def insert_ticket(conn: asyncpg.Connection, **fields: Any) -> asyncpg.Record | None:
    """``insert_tickets`` for one ticket: its row, or None when it exists (a second ``ticket.created``)."""
    return (await insert_tickets(conn, [fields])).get(fields["ticket_no"])


async def get_ticket(conn: asyncpg.Connection, *, ticket_no: str, for_update: bool = False) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT * FROM {S}.tickets WHERE ticket_no = $1{lock}", ticket_no)


_UPDATABLE = {"category", "priority", "department", "assignee", "rule", "state", "queued_at",
              "escalation_level", "breaches", "warnings", "negatives"}


async def update_ticket(conn: asyncpg.Connection, *, ticket_no: str, **fields: Any) -> asyncpg.Record | None:
    """Set ``fields``; returns the updated row (so no ``get_ticket`` is needed after it)."""
    if unknown := set(fields) - _UPDATABLE:
        raise ValueError(f"not updatable: {unknown}")
    cols = list(fields)
    sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(cols, start=2))
    return await conn.fetchrow(f"UPDATE {S}.tickets SET {sets}, updated_at = now() WHERE ticket_no = $1 RETURNING *",
                               ticket_no, *(fields[c] for c in cols))


async def assign_next(conn: asyncpg.Connection, *, department: str) -> tuple[asyncpg.Record | None, bool, bool]:
    """Give ``department``'s oldest queued ticket (not being changed by another transaction: ``SKIP
    LOCKED``) to its least-loaded available agent under the cap, ties to the one assigned least recently
    (round-robin); the agent's load grows by one. Call with the department locked.

    Returns ``(ticket, more, staffed)``: the ticket row as updated (None when the queue is empty or
    nobody has room), whether another ticket is queued there (so the caller's drain loop ends without
    asking again when the queue is empty, the common case after a placement), and whether the department
    has anybody on its roster (a new ticket the drain left queued is escalated when nobody is: no
    round trip of its own). One statement."""
    row = await conn.fetchrow(
        f"""WITH t AS (SELECT ticket_no FROM {S}.tickets WHERE department = $1 AND state = 'queued'
                       ORDER BY queued_at, ticket_no LIMIT 1 FOR UPDATE SKIP LOCKED),
                 a AS (SELECT id FROM {S}.agents WHERE department = $1 AND available AND load < capacity
                       AND EXISTS (SELECT 1 FROM t)
                       ORDER BY load, last_assigned_at NULLS FIRST, id LIMIT 1 FOR UPDATE),
                 took AS (UPDATE {S}.agents g SET load = g.load + 1, last_assigned_at = clock_timestamp()
                          FROM a WHERE g.id = a.id RETURNING g.id),
                 done AS (UPDATE {S}.tickets k SET state = 'assigned', assignee = took.id, queued_at = NULL,
                                 updated_at = now()
                          FROM took, t WHERE k.ticket_no = t.ticket_no RETURNING k.*)
            SELECT done.ticket_no IS NOT NULL AS assigned, done.*,
                   EXISTS (SELECT 1 FROM {S}.tickets q WHERE q.department = $1 AND q.state = 'queued'
                           AND q.ticket_no NOT IN (SELECT ticket_no FROM done)) AS more,
                   EXISTS (SELECT 1 FROM {S}.agents r WHERE r.department = $1) AS staffed
            FROM (SELECT 1) one LEFT JOIN done ON true""",
        department,
    )
    return (row if row["assigned"] else None), row["more"], row["staffed"]


async def queue(conn: asyncpg.Connection, *, department: str | None = None, limit: int = 500) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT ticket_no, department, category, priority, queued_at FROM {S}.tickets"
        " WHERE state = 'queued' AND ($1::text IS NULL OR department = $1) ORDER BY department, queued_at, ticket_no"
        " LIMIT $2",
        department, limit,
    )


async def backlog(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Tickets without an owner: queued per department, plus unassigned (department '-')."""
    return await conn.fetch(
        f"SELECT coalesce(department, '-') AS department, state, count(*) AS n FROM {S}.tickets"
        " WHERE state IN ('queued', 'unassigned') GROUP BY 1, 2"
    )


async def held_by(conn: asyncpg.Connection, *, agent_id: str) -> list[str]:
    rows = await conn.fetch(
        f"SELECT ticket_no FROM {S}.tickets WHERE assignee = $1 AND state = 'assigned' ORDER BY ticket_no", agent_id
    )
    return [r["ticket_no"] for r in rows]


# ---- history ----

Assignment = tuple[str, str, str | None, str | None, str | None, str | None, str | None]
"""(ticket_no, action, department, agent, category, priority, rule): one row of a ticket's history."""


async def add_assignments(conn: asyncpg.Connection, rows: list[Assignment]) -> None:
    """History rows, in the order given, one statement (the unit's staged writer: ``u.stage``)."""
    cols = list(zip(*rows, strict=True))
    await conn.execute(
        f"INSERT INTO {S}.assignments (ticket_no, action, department, agent, category, priority, rule)"
        " SELECT a, b, c, d, e, f, g FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
        " $6::text[], $7::text[]) WITH ORDINALITY AS r(a, b, c, d, e, f, g, n) ORDER BY n",
        *(list(c) for c in cols),
    )


async def add_escalation(conn: asyncpg.Connection, *, ticket_no: str, trigger: str, level: int, role: str,
                         to: str, reason: str, due_at: datetime | None) -> None:
    await conn.execute(
        f"INSERT INTO {S}.escalations (ticket_no, trigger, level, role, to_whom, reason, due_at)"
        " VALUES ($1,$2,$3,$4,$5,$6,$7)",
        ticket_no, trigger, level, role, to, reason, due_at,
    )


async def history(conn: asyncpg.Connection, *, ticket_no: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT action, department, agent, category, priority, rule, at FROM {S}.assignments"
        " WHERE ticket_no = $1 ORDER BY id", ticket_no,
    )


async def escalations(conn: asyncpg.Connection, *, ticket_no: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT trigger, level, role, to_whom AS to, reason, due_at, at FROM {S}.escalations"
        " WHERE ticket_no = $1 ORDER BY id", ticket_no,
    )


async def clock_now(conn: asyncpg.Connection) -> datetime:
    """The database's wall clock now (``clock_timestamp()``, not the transaction's start)."""
    return await conn.fetchval("SELECT clock_timestamp()")
