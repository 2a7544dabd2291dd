"""Roster and configuration use cases: sync the files at start, replace the roster, change an agent.

Any change that may free capacity drains the affected departments' queues in the same transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson

from services.routing import store
from services.routing.usecases.assign import drain, lock
from services.routing.config import AgentSpec, Roster, RuleSet
from services.routing.metrics import Pending
from services.routing.usecases import metered
from shared.errors import DomainError, NotFound
from shared.runtime import Runtime
from shared.unit import Unit


async def sync_config(rt: Runtime, rules: RuleSet, roster: Roster, *, rules_source: str,
                      roster_source: str) -> dict[str, Any]:
    """At start: record the rules version, mirror the departments, apply the roster file when its content
    changed since it was last applied (run-time roster changes survive restarts), then drain queues."""
    async with metered(rt) as (u, pending):
        await store.lock_config(u.conn)
        last = await store.latest_config(u.conn, kind="rules")
        if last is None or last["sha256"] != rules.sha256:
            await store.record_config(u.conn, kind="rules", version=rules.version, sha256=rules.sha256,
                                      source=rules_source)
        await store.sync_departments(u.conn, rules=rules)
        last = await store.latest_config(u.conn, kind="roster", files_only=True)
        applied = last is None or last["sha256"] != roster.sha256
        if applied:
            await _apply(u, roster.agents, list(rules.departments), pending)
            await store.record_config(u.conn, kind="roster", version=roster.version, sha256=roster.sha256,
                                      source=roster_source)
        else:
            await _drain_all(u, list(rules.departments), pending)
    return {"rules": rules.version, "roster_applied": applied}


async def _drain_all(u: Unit, departments: Sequence[str], pending: Pending) -> None:
    await lock(u, departments)
    for dept in sorted(departments):
        await drain(u, dept, pending)


async def _apply(u: Unit, agents: Sequence[AgentSpec], departments: Sequence[str],
                 pending: Pending) -> list[str]:
    await lock(u, departments)
    for spec in agents:
        await store.upsert_agent(u.conn, spec=spec)
    retired = await store.remove_agents_except(u.conn, keep=[a.id for a in agents])
    for dept in sorted(departments):
        await drain(u, dept, pending)
    return retired


async def replace_roster(rt: Runtime, rules: RuleSet, agents: Sequence[AgentSpec], *,
                         caller: str) -> dict[str, Any]:
    """``PUT /v1/roster``: the whole roster. Agents left out are removed, or made unavailable while they
    still hold tickets (those finish with them)."""
    ids = [a.id for a in agents]
    for i, a in enumerate(agents):
        if a.department not in rules.departments:
            raise DomainError(f"agents.{i}.department",
                              f"unknown department {a.department!r}; one of {', '.join(rules.departments)}")
        if ids.index(a.id) != i:
            raise DomainError(f"agents.{i}.id", f"duplicate agent id {a.id!r}")
    body = orjson.dumps([a.model_dump() for a in agents], option=orjson.OPT_SORT_KEYS)
    async with metered(rt) as (u, pending):
        await store.lock_config(u.conn)
        retired = await _apply(u, agents, list(rules.departments), pending)
        await store.record_config(u.conn, kind="roster", version=f"http:{caller}",
                                  sha256=hashlib.sha256(body).hexdigest(), source=f"http:{caller}")
    return {**await view(rt.pool), "retired": retired}


async def change_agent(rt: Runtime, *, agent_id: str, available: bool | None,
                       capacity: int | None) -> dict[str, Any]:
    """``PATCH /v1/agents/{id}``: availability and capacity at run time; freed room takes queued tickets."""
    async with metered(rt) as (u, pending):
        agent = await store.get_agent(u.conn, agent_id=agent_id)
        if agent is None:
            raise NotFound("agent_id", f"no agent {agent_id!r} on the roster")
        await lock(u, [agent["department"]])
        await store.update_agent(u.conn, agent_id=agent_id, available=available, capacity=capacity)
        assigned = await drain(u, agent["department"], pending)
        agent = await store.get_agent(u.conn, agent_id=agent_id)
        tickets = await store.held_by(u.conn, agent_id=agent_id)
    return {**_agent(agent), "tickets": tickets, "assigned_from_queue": assigned}


async def agent(pool: asyncpg.Pool, *, agent_id: str) -> dict[str, Any]:
    async with pool.acquire() as conn:
        row = await store.get_agent(conn, agent_id=agent_id)
        if row is None:
            raise NotFound("agent_id", f"no agent {agent_id!r} on the roster")
        return {**_agent(row), "tickets": await store.held_by(conn, agent_id=agent_id)}


def _agent(r: asyncpg.Record) -> dict[str, Any]:
    return {k: r[k] for k in ("id", "name", "department", "capacity", "available", "load", "lead",
                              "last_assigned_at")}


async def view(pool: asyncpg.Pool) -> dict[str, Any]:
    async with pool.acquire() as conn:
        depts = await store.departments(conn)
        agents = await store.agents(conn)
        rules = await store.latest_config(conn, kind="rules")
        roster = await store.latest_config(conn, kind="roster")
    return {
        "rules_version": rules["version"] if rules else None,
        "roster_version": roster["version"] if roster else None,
        "departments": [{"name": d["name"], "categories": list(d["categories"]), "lead": d["lead"],
                         "supervisor": d["supervisor"], "queued": d["queued"]} for d in depts],
        "agents": [_agent(a) for a in agents],
    }


async def queue(pool: asyncpg.Pool, *, department: str | None) -> dict[str, Any]:
    async with pool.acquire() as conn:
        rows = await store.queue(conn, department=department)
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["department"], []).append(
            {"ticket_no": r["ticket_no"], "category": r["category"], "priority": r["priority"],
             "queued_at": r["queued_at"]})
    return {"departments": out, "total": len(rows)}


async def ticket(pool: asyncpg.Pool, *, ticket_no: str) -> dict[str, Any]:
    async with pool.acquire() as conn:
        t = await store.get_ticket(conn, ticket_no=ticket_no)
        if t is None:
            raise NotFound("ticket_no", f"routing has no ticket {ticket_no}")
        history = await store.history(conn, ticket_no=ticket_no)
        escalations = await store.escalations(conn, ticket_no=ticket_no)
    keys = ("ticket_no", "channel", "category", "priority", "department", "assignee", "rule", "state", "queued_at",
            "escalation_level", "rules_version", "created_at", "updated_at")
    return {**{k: t[k] for k in keys}, "history": [dict(h) for h in history],
            "escalations": [dict(e) for e in escalations]}


async def refresh_gauges(pool: asyncpg.Pool) -> tuple[list[asyncpg.Record], list[asyncpg.Record], list[str]]:
    async with pool.acquire() as conn:
        return await store.backlog(conn), await store.agents(conn), [d["name"] for d in
                                                                     await store.departments(conn)]
