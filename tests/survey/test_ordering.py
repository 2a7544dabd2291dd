"""One ticket's events handled in any order (a queue's messages are processed concurrently, and by
several replicas): hand-made intake events published out of order through the real broker."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

import httpx

from shared.envelope import CloudEvent, new_event


def fake_ticket_no() -> str:
    return f"20990202{random.randrange(10**6):06d}"


def intake_event(type_: str, no: str, seq: int, **data: object) -> CloudEvent:
    now = datetime.now(UTC).isoformat()
    base: dict[str, object] = {"actor": "agent-7", "at": now}
    if type_ == "ticket.created":
        base = {"channel": "app", "urgency": "normal", "impact": "single", "received_at": now, "created_at": now,
                "customer": {"name": "Amy", "id": f"c-{no}", "language": "en"}, "subject": "help"}
    elif type_ == "ticket.resolved":
        base |= {"outcome": "resolved", "solution": "replaced the charger", "first_contact": False}
    elif type_ == "ticket.reopened":
        base |= {"reason": "still broken"}
    return new_event(service="intake", type=type_, ticket_no=no, seq=seq, data={**base, **data})


async def publish_and_wait(survey, publisher, event: CloudEvent) -> None:  # noqa: ANN001
    """Publish as intake's relay would, and wait until the survey service has handled it."""
    await publisher.publish("helpdesk.events", event.type, event.to_bytes(), message_id=event.id,
                            content_type="application/cloudevents+json")
    async with survey.rt.pool.acquire() as conn:
        for _ in range(200):
            if await conn.fetchval("SELECT 1 FROM survey.inbox WHERE message_id = $1", event.id):
                return
            await asyncio.sleep(0.05)
    raise AssertionError(f"{event.type} seq {event.data['seq']} was not handled")


async def statuses(survey, no: str) -> list[tuple[int, str]]:  # noqa: ANN001
    async with survey.rt.pool.acquire() as conn:
        rows = await conn.fetch("SELECT resolution_seq, status FROM survey.surveys WHERE ticket_no = $1"
                                " ORDER BY resolution_seq", no)
    return [(r["resolution_seq"], r["status"]) for r in rows]


async def test_resolved_before_created_still_gets_the_customer_and_language(survey, tap, publisher):
    no = fake_ticket_no()
    await publish_and_wait(survey, publisher, intake_event("ticket.resolved", no, 2))
    [sent] = await tap.wait_events(lambda e: e.subject == no and e.type == "survey.sent")
    await publish_and_wait(survey, publisher, intake_event("ticket.created", no, 1))
    async with survey.rt.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT language, customer_key FROM survey.surveys WHERE ticket_no = $1", no)
    assert dict(row) == {"language": "en", "customer_key": f"id:c-{no}"}
    async with httpx.AsyncClient(timeout=10) as web:
        assert "Was your problem solved?" in (await web.get(sent.data["url"])).text


async def test_reopen_handled_before_its_resolution_leaves_no_survey(survey, tap, publisher):
    no = fake_ticket_no()
    await publish_and_wait(survey, publisher, intake_event("ticket.reopened", no, 3))
    await publish_and_wait(survey, publisher, intake_event("ticket.resolved", no, 2))
    assert await statuses(survey, no) == []
    await publish_and_wait(survey, publisher, intake_event("ticket.resolved", no, 4))
    await tap.wait_events(lambda e: e.subject == no and e.type == "survey.sent")
    assert await statuses(survey, no) == [(4, "sent")]


async def test_later_resolution_supersedes_and_an_older_reopen_does_not_touch_it(survey, tap, publisher):
    no = fake_ticket_no()
    await publish_and_wait(survey, publisher, intake_event("ticket.resolved", no, 2))
    await publish_and_wait(survey, publisher, intake_event("ticket.resolved", no, 4))
    [cancelled] = await tap.wait_events(lambda e: e.subject == no and e.type == "survey.cancelled")
    assert cancelled.data["reason"] == "superseded by a later resolution"
    await publish_and_wait(survey, publisher, intake_event("ticket.reopened", no, 3))
    assert await statuses(survey, no) == [(2, "cancelled"), (4, "sent")]
    assert len(tap.events(lambda e: e.subject == no and e.type == "survey.sent")) == 2
