"""Routing under test: the service started in-process against the run's vhost and database, and
helpers that publish the events routing consumes (as intake, SLA and survey would)."""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.envelope import CloudEvent, new_event
from shared.settings import Settings
from tests.conftest import Running, start_service

_serial = itertools.count(random.randrange(10_000_000, 90_000_000))


def new_ticket_no() -> str:
    return f"20991231{next(_serial):08d}"


def created(ticket_no: str | None = None, **over: Any) -> CloudEvent:
    """A ``ticket.created`` as intake publishes it."""
    now = datetime.now(UTC)
    data: dict[str, Any] = {
        "channel": "phone", "external_id": None,
        "customer": {"name": "李雷", "phone": "138****5678", "email": None, "tier": "standard", "language": "zh-CN"},
        "subject": "请问如何设置", "description": None, "kind": None, "urgency": "normal", "impact": "single",
        "order_no": None, "product": None, "complaint": None, "received_at": now.isoformat(),
        "created_at": now.isoformat(), "caller": "tester",
    }
    tier = over.pop("tier", None)
    data.update(over)
    if tier:
        data["customer"] = {**data["customer"], "tier": tier}
    return new_event(service="intake", type="ticket.created", ticket_no=ticket_no or new_ticket_no(), seq=1,
                     data=data)


def event(type_: str, ticket_no: str, *, source: str = "intake", **data: Any) -> CloudEvent:
    now = datetime.now(UTC).isoformat()
    defaults: dict[str, dict[str, Any]] = {
        "ticket.resolved": {"outcome": "resolved", "solution": "replaced power module PWR-01", "actor": "agent",
                            "at": now, "first_contact": True},
        "ticket.closed": {"actor": "agent", "at": now},
        "ticket.reopened": {"actor": "customer", "at": now, "reason": "still broken"},
        "ticket.reprioritized": {"actor": "lead", "at": now, "priority": "P1", "reason": "VIP line stopped"},
        "ticket.escalation_requested": {"actor": "agent", "at": now, "reason": "needs a specialist"},
        "sla.warning": {"metric": "resolution", "due_at": now, "remaining_s": 600.0},
        "sla.breached": {"metric": "resolution", "due_at": now, "breached_at": now},
        "survey.negative": {"survey_id": str(uuid.uuid4()), "reason": "overall: dissatisfied"},
    }
    return new_event(service=source, type=type_, ticket_no=ticket_no, seq=99,
                     data={**defaults.get(type_, {}), **data})


async def send(publisher, ev: CloudEvent) -> None:  # noqa: ANN001
    await publisher.publish("helpdesk.events", ev.type, ev.to_bytes(), message_id=ev.id,
                            content_type="application/cloudevents+json")


def routed(ticket_no: str, **match: Any):  # noqa: ANN201
    def pred(e: CloudEvent) -> bool:
        return (e.type == "ticket.routed" and e.subject == ticket_no
                and all(e.data.get(k) == v for k, v in match.items()))
    return pred


def escalated(ticket_no: str, **match: Any):  # noqa: ANN201
    def pred(e: CloudEvent) -> bool:
        return (e.type == "ticket.escalated" and e.subject == ticket_no
                and all(e.data.get(k) == v for k, v in match.items()))
    return pred


@pytest.fixture(scope="package")
async def routing(run_env: dict[str, str], drop_db_at_end: None) -> AsyncIterator[Running]:
    from services.routing.app import create_app

    async for running in start_service(create_app, Settings()):
        yield running


async def slate(svc: Running, agents: list[dict[str, Any]]) -> dict[str, Any]:
    """A known roster and empty queues: earlier tests' tickets are released (test set-up only)."""
    async with svc.rt.pool.acquire() as conn:
        await conn.execute("UPDATE routing.tickets SET state = 'released' WHERE state <> 'released'")
        await conn.execute("DELETE FROM routing.agents")
    r = await svc.client.put("/v1/roster", json={"agents": agents})
    assert r.status_code == 200, r.text
    return r.json()
