"""A batch's ticket facts are read and locked once (``usecases.prepare``: ``store.lock_facts``), merged in
memory and written once at the flush (``store.save_facts``): every event plans with, and the batch
commits, exactly the facts that one transaction per event gives; a ticket the batch meets first is
upserted at once (so a replica's concurrent insert is waited for) and then held."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from services.notification import domain, usecases
from services.notification.config import NotificationSettings, load_rules
from tests.notification.helpers import event
from tests.support import Counting

FACTS = ", ".join(domain.FACT_FIELDS)
LATER = datetime(2099, 1, 1, tzinfo=UTC)  # the deliveries planned here are never due: the worker leaves them


async def _forget(rt: Any, *nos: str) -> None:
    await rt.pool.execute("DELETE FROM notification.deliveries WHERE ticket_no = ANY($1)", list(nos))


def _events(no: str) -> list[Any]:
    customer = {"name": "张*", "id": "c-1", "phone": "138****0000", "email": None, "tier": "gold",
                "language": "en"}
    return [
        event("ticket.created", no, source="intake", customer=customer, urgency="urgent", channel="web",
              customer_key="k-1", subject="s", description="d"),
        event("ticket.routed", no, priority="P2", category="hardware", assignee="agent-1", department="d"),
        event("ticket.reprioritized", no, source="intake", priority="P1", actor="lead"),
        event("ticket.routed", no, priority="P1", category="hardware", assignee=None, department="d"),
    ]


async def _facts(rt: Any, no: str) -> dict[str, Any]:
    return dict(await rt.pool.fetchrow(f"SELECT {FACTS} FROM notification.tickets WHERE ticket_no = $1", no))


async def _plans(rt: Any, no: str) -> list[tuple[Any, ...]]:
    rows = await rt.pool.fetch("SELECT event_type, recipient, channel, template, language, urgent, context"
                               " FROM notification.deliveries WHERE ticket_no = $1 ORDER BY id", no)
    out = []
    for r in rows:
        context = orjson.loads(r["context"].replace(no, "<no>"))
        context["data"].pop("seq", None)  # the helper's events draw a random seq
        out.append(tuple(r.values())[:-1] + (context,))
    return out


async def test_a_prepared_batch_plans_and_commits_what_one_transaction_each_does(notification: Any) -> None:
    rt = notification.rt
    cfg = load_rules(NotificationSettings().rules_file)
    now = LATER
    tag = uuid.uuid4().hex[:8]
    alone, fresh, known = f"A-{tag}", f"F-{tag}", f"K-{tag}"

    async def plan(e: Any, tx: Any = None) -> None:
        await usecases.plan_event(rt, event=e, cfg=cfg, now=now, wake=lambda: None, within=tx)

    for e in _events(alone):
        await plan(e)

    # a batch that meets the ticket first: its ticket.created upserts (and locks) the row, the rest is held
    async with rt.transaction() as tx:
        tx.conn = counting = Counting(tx.conn, "notification")
        events = _events(fresh)
        await usecases.prepare(tx, events)
        for e in events:
            await plan(e, tx)
    on_tickets = [s for s in counting.statements if s[1] == "tickets"]
    assert on_tickets == [("SELECT", "tickets"), ("INSERT", "tickets"), ("UPDATE", "tickets")], on_tickets

    # a batch about a ticket that has its row: one locking read and one write, whatever the event count
    await plan(_events(known)[0])
    async with rt.transaction() as tx:
        tx.conn = counting = Counting(tx.conn, "notification")
        events = _events(known)[1:]
        await usecases.prepare(tx, events)
        for e in events:
            await plan(e, tx)
    on_tickets = [s for s in counting.statements if s[1] == "tickets"]
    assert on_tickets == [("SELECT", "tickets"), ("UPDATE", "tickets")], on_tickets

    want = await _facts(rt, alone)
    assert want["priority"] == "P1" and want["assignee"] is None and want["language"] == "en"  # the rules at work
    assert await _facts(rt, fresh) == want
    assert await _facts(rt, known) == want
    assert await _plans(rt, fresh) == await _plans(rt, alone)
    assert await _plans(rt, known) == await _plans(rt, alone)
    await _forget(rt, alone, fresh, known)


async def test_a_rolled_back_batch_leaves_the_facts_as_they_were(notification: Any) -> None:
    rt = notification.rt
    cfg = load_rules(NotificationSettings().rules_file)
    no = f"R-{uuid.uuid4().hex[:8]}"
    first, *rest = _events(no)
    await usecases.plan_event(rt, event=first, cfg=cfg, now=LATER, wake=lambda: None)
    before = await _facts(rt, no)
    try:
        async with rt.transaction() as tx:
            await usecases.prepare(tx, rest)
            for e in rest:
                await usecases.plan_event(rt, event=e, cfg=cfg, now=LATER, wake=lambda: None, within=tx)
            raise RuntimeError("poison")
    except RuntimeError:
        pass
    assert await _facts(rt, no) == before
    await _forget(rt, no)
