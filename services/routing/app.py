"""Routing wiring: configuration, queues, subscribers and HTTP routes. Nothing connects until the
lifespan runs; a bad rules or roster file refuses the start (``ConfigError`` naming line and problem)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import FastAPI

from services.routing import api, config, handlers, metrics
from services.routing.usecases import roster
from shared import openapi
from shared.consumer import subscribe
from shared.runtime import Runtime
from shared.settings import Settings
from shared.topology import EVENTS, quorum_queue

SERVICE = "routing"
DESCRIPTION = (
    "Routing: classifies each new ticket (rules file), sets its priority (declarative matrix), assigns it "
    "to the least-loaded available agent of its department or queues it (ticket.routed), and escalates "
    "along the configured chain on agents' requests, SLA warnings and breaches, negative surveys and "
    "unassignable tickets (ticket.escalated). HTTP: roster, agents' availability, queues."
)


def build_runtime(settings: Settings | None = None,
                  routing: config.RoutingSettings | None = None) -> tuple[Runtime, config.RuleSet]:
    routing = routing or config.RoutingSettings()
    rules, agents = config.load(routing)
    rt = Runtime(SERVICE, settings or Settings(), Path(__file__).parent / "migrations")
    limit = rt.settings.delivery_limit
    ready = asyncio.Event()
    on_ticket, on_signal, prepare = handlers.build(rt, rules, ready)
    tickets_q = quorum_queue("routing.tickets", routing_key=handlers.TICKET_KEYS[0], delivery_limit=limit)
    signals_q = quorum_queue("routing.signals", routing_key=handlers.SIGNAL_KEYS[0], delivery_limit=limit)
    subscribe(rt, tickets_q, EVENTS, on_ticket, batch=rt.batching(linger=False, prepare=prepare))
    subscribe(rt, signals_q, EVENTS, on_signal)
    rt.bindings.append((tickets_q, EVENTS, handlers.TICKET_KEYS[1:]))
    rt.bindings.append((signals_q, EVENTS, handlers.SIGNAL_KEYS[1:]))

    async def sync(r: Runtime) -> None:
        await roster.sync_config(r, rules, agents, rules_source=str(routing.rules_file),
                                 roster_source=str(routing.roster_file))
        ready.set()

    async def gauges(r: Runtime) -> None:
        backlog, agent_rows, departments = await roster.refresh_gauges(r.pool)
        metrics.set_backlog(backlog, departments)
        metrics.set_agents(agent_rows, per_agent=r.settings.metrics_agent_labels)

    rt.on_start.insert(0, sync)
    rt.metrics_hooks.append(gauges)
    return rt, rules


def create_app(settings: Settings | None = None, routing: config.RoutingSettings | None = None) -> FastAPI:
    routing = routing or config.RoutingSettings()
    rt, rules = build_runtime(settings, routing)
    app = rt.fastapi(title="helpdesk routing", description=DESCRIPTION)
    app.state.rules = rules
    app.state.rules_source = routing.rules_file
    app.include_router(api.router)
    openapi.extend(app, lambda doc: api.document(doc, rules))
    return app
