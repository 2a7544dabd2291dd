"""A batch of ``ticket.created`` (one transaction, ``shared.batching``) writes its tickets' rows with one
upsert and its complaints with one insert (``store.set_customers`` / ``store.add_histories``, staged
for the flush), and what it commits is what the same events handled one transaction each commit: also
when the batch holds a ``ticket.resolved`` of the same ticket (before or after its ``ticket.created``),
or the same ticket's ``ticket.created`` twice."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.survey import usecases
from shared.envelope import CloudEvent
from tests.support import Counting
from tests.survey.test_ordering import fake_ticket_no, intake_event

TICKET = ("known", "customer_key", "language", "complaint", "created_at", "reopened_seq")
SURVEY = ("status", "language", "customer_key", "complaint", "resolution_seq", "resolved_at", "send_at",
          "remind_at", "expires_at", "due_at", "sent_at", "cancel_reason")
AT = datetime.now(UTC) - timedelta(minutes=5)


def created(no: str, customer: str, *, language: str = "en", complaint: bool = False) -> CloudEvent:
    extra: dict[str, Any] = {"complaint": {"reason": "second failure"}} if complaint else {}
    return intake_event("ticket.created", no, 1, received_at=AT.isoformat(), created_at=AT.isoformat(),
                        customer={"name": "Amy", "id": customer, "language": language}, **extra)


def resolved(no: str) -> CloudEvent:
    return intake_event("ticket.resolved", no, 2, at=(AT + timedelta(minutes=1)).isoformat())


async def handle(survey: Any, event: CloudEvent, within: Any = None) -> None:
    if event.type == "ticket.created":
        await usecases.record_ticket(survey.rt, event=event, within=within)
    else:
        await usecases.schedule(survey.rt, survey.running.app.state.policy, event=event, now=AT + timedelta(minutes=2),
                                within=within)


async def one_at_a_time(survey: Any, events: list[CloudEvent]) -> None:
    for event in events:
        await handle(survey, event)


async def one_batch(survey: Any, events: list[CloudEvent]) -> Counting:
    async with survey.rt.transaction(batch_ids=[e.id for e in events]) as tx:
        tx.conn = counting = Counting(tx.conn, "survey")
        for event in events:
            await handle(survey, event, within=tx)
    return counting


async def state(survey: Any, no: str) -> tuple[dict[str, Any], list[dict[str, Any]], list[tuple[Any, ...]]]:
    """The ticket's row, its surveys and its history, without the ticket number."""
    pool = survey.rt.pool
    ticket = await pool.fetchrow(f"SELECT {', '.join(TICKET)} FROM survey.tickets WHERE ticket_no = $1", no)
    surveys = await pool.fetch(f"SELECT {', '.join(SURVEY)} FROM survey.surveys WHERE ticket_no = $1"
                               " ORDER BY created_at", no)
    history = await pool.fetch("SELECT customer_key, kind, at FROM survey.customer_history WHERE ticket_no = $1"
                               " ORDER BY customer_key", no)
    return dict(ticket), [dict(s) for s in surveys], [tuple(h) for h in history]


async def test_a_batch_of_created_costs_one_upsert_and_equals_one_at_a_time(survey: Any) -> None:
    customers = [f"c-{uuid.uuid4().hex[:12]}" for _ in range(8)]
    alone, batched = ([fake_ticket_no() for _ in customers] for _ in range(2))
    languages = ["en", "zh-CN"] * 4

    def events(nos: list[str]) -> list[CloudEvent]:
        return [created(no, c, language=lang, complaint=i % 2 == 0)
                for i, (no, c, lang) in enumerate(zip(nos, customers, languages, strict=True))]

    await one_at_a_time(survey, events(alone))
    counting = await one_batch(survey, events(batched))

    on_tables = Counter(s for s in counting.statements if s[1] in ("tickets", "surveys", "customer_history"))
    assert on_tables == {("INSERT", "tickets"): 1, ("INSERT", "customer_history"): 1}, counting.statements
    for one, many, c, lang, i in zip(alone, batched, customers, languages, range(8), strict=True):
        ticket, surveys, history = await state(survey, many)
        assert (ticket, surveys, history) == await state(survey, one)
        assert ticket | {"created_at": None} == {"known": True, "customer_key": f"id:{c}", "language": lang,
                                                  "complaint": i % 2 == 0, "created_at": None, "reopened_seq": 0}
        assert history == ([(f"id:{c}", "complaint", AT)] if i % 2 == 0 else [])


@pytest.mark.parametrize("order", ["created_first", "resolved_first"])
async def test_created_and_resolved_of_one_ticket_in_one_batch(survey: Any, order: str) -> None:
    """Created first: the resolution's survey reads the staged customer, language and complaint (a
    complaint waits for its own delay). Resolved first: the flush fills them into the survey."""
    customer = f"c-{uuid.uuid4().hex[:12]}"
    alone, batched = fake_ticket_no(), fake_ticket_no()

    def events(no: str) -> list[CloudEvent]:
        pair = [created(no, customer, complaint=True), resolved(no)]
        return pair if order == "created_first" else pair[::-1]

    await one_at_a_time(survey, events(alone))
    await one_batch(survey, events(batched))

    ticket, surveys, history = await state(survey, batched)
    assert (ticket, surveys, history) == await state(survey, alone)
    [row] = surveys
    assert (row["customer_key"], row["language"]) == (f"id:{customer}", "en")
    if order == "created_first":  # the complaint's hour-long delay: still scheduled
        assert (row["complaint"], row["status"]) == (True, "scheduled")
    else:  # surveyed before the ticket was known: no complaint yet, sent at once
        assert (row["complaint"], row["status"]) == (False, "sent")


async def test_the_same_tickets_created_twice_in_one_batch(survey: Any) -> None:
    """Two ``ticket.created`` of one ticket (two event ids): the last one's customer wins, as one at a
    time, and a resolution after them surveys that customer; the history keeps the first complaint."""
    first, second = f"c-{uuid.uuid4().hex[:12]}", f"c-{uuid.uuid4().hex[:12]}"
    alone, batched, only_created = fake_ticket_no(), fake_ticket_no(), fake_ticket_no()

    def events(no: str) -> list[CloudEvent]:
        return [created(no, first, language="zh-CN", complaint=True), created(no, second, complaint=True),
                resolved(no)]

    await one_at_a_time(survey, events(alone))
    await one_batch(survey, events(batched))
    counting = await one_batch(survey, events(only_created)[:2])

    ticket, surveys, history = await state(survey, batched)
    assert (ticket, surveys, history) == await state(survey, alone)
    assert (ticket["customer_key"], ticket["language"]) == (f"id:{second}", "en")
    assert [(s["customer_key"], s["language"], s["complaint"]) for s in surveys] == [(f"id:{second}", "en", True)]
    assert sorted(history) == sorted([(f"id:{first}", "complaint", AT), (f"id:{second}", "complaint", AT)])
    ticket, surveys, history = await state(survey, only_created)
    assert (ticket["customer_key"], ticket["language"], surveys) == (f"id:{second}", "en", [])
    assert Counter(s for s in counting.statements if s[1] == "tickets") == {("INSERT", "tickets"): 1}
