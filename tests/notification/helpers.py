"""Helpers for notification tests: tickets through the real intake, events as other services send them."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from typing import Any

from shared.envelope import CloudEvent, new_event


def phone() -> str:
    return "139" + f"{random.randrange(10**8):08d}"


async def create_ticket(intake: Any, *, phone: str | None = None, email: str | None = None,
                        language: str | None = None, urgency: str = "normal", name: str = "李雷") -> str:
    customer: dict[str, Any] = {"name": name}
    if phone:
        customer["phone"] = phone
    if email:
        customer["email"] = email
    if language:
        customer["language"] = language
    r = await intake.client.post("/v1/tickets", json={
        "channel": "web", "external_id": f"web-{uuid.uuid4().hex}", "customer": customer,
        "subject": "设备无法启动", "description": "按电源键没有反应", "urgency": urgency,
    })
    assert r.status_code == 201, r.text
    return r.json()["ticket_no"]


def event(type: str, ticket_no: str, source: str = "routing", **data: Any) -> CloudEvent:
    return new_event(service=source, type=type, ticket_no=ticket_no, seq=random.randrange(1, 10**6), data=data)


async def publish(publisher: Any, e: CloudEvent) -> None:
    await publisher.publish("helpdesk.events", e.type, e.to_bytes(), message_id=e.id,
                            content_type="application/cloudevents+json")


async def rows(notification: Any, ticket_no: str, recipient: str | None = "customer") -> list[dict[str, Any]]:
    """The ticket's deliveries (by default the customer's only: when the whole suite runs, other
    services' events, e.g. a real ``ticket.routed``, may add staff deliveries)."""
    async with notification.rt.pool.acquire() as conn:
        return [dict(r) for r in await conn.fetch(
            "SELECT * FROM notification.deliveries WHERE ticket_no = $1 AND ($2::text IS NULL OR recipient = $2)"
            " ORDER BY id", ticket_no, recipient)]


async def wait_rows(notification: Any, ticket_no: str, pred: Any, timeout: float = 15.0,
                    recipient: str | None = "customer") -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = await rows(notification, ticket_no, recipient)
        if pred(got):
            return got
        await asyncio.sleep(0.05)
    raise TimeoutError(f"deliveries of {ticket_no} never matched: {await rows(notification, ticket_no)}")
