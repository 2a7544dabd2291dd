"""A batch's ticket facts are read and locked once (``usecases.prepare``: ``store.lock_facts``), merged in
memory and written once at the flush (``store.save_facts``): every event plans with, and the batch
commits, exactly the facts that one transaction per event gives. The same statement makes the rows of
the tickets the batch meets first (those an event's facts would upsert), so a batch upserts none; a
row a replica committed after that statement's snapshot is not held, and is upserted at once (which
waits for it and locks it) and then held."""

from __future__ import annotations

import asyncio
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

    # a batch that meets the ticket first: the prepare makes (and locks) the row, every event is held
    async with rt.transaction() as tx:
        tx.conn = counting = Counting(tx.conn, "notification")
        events = _events(fresh)
        await usecases.prepare(tx, events)
        for e in events:
            await plan(e, tx)
    on_tickets = [s for s in counting.statements if s[1] == "tickets"]
    assert on_tickets == [("WITH", "tickets"), ("UPDATE", "tickets")], on_tickets

    # a batch about a ticket that has its row: one locking read and one write, whatever the event count
    await plan(_events(known)[0])
    async with rt.transaction() as tx:
        tx.conn = counting = Counting(tx.conn, "notification")
        events = _events(known)[1:]
        await usecases.prepare(tx, events)
        for e in events:
            await plan(e, tx)
    on_tickets = [s for s in counting.statements if s[1] == "tickets"]
    assert on_tickets == [("WITH", "tickets"), ("UPDATE", "tickets")], on_tickets

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


async def _row(rt: Any, no: str) -> dict[str, Any] | None:
    """The ticket's whole row but its number and ``updated_at`` (None: no row)."""
    r = await rt.pool.fetchrow("SELECT * FROM notification.tickets WHERE ticket_no = $1", no)
    return None if r is None else {k: v for k, v in r.items() if k not in ("ticket_no", "updated_at")}


def _created(no: str, i: int) -> Any:
    customer = {"name": "张*", "id": f"c-{i}", "phone": "138****0000" if i % 2 else None,
                "email": "l***@example.com" if i % 3 else None, "language": ("en", "zh-CN", None)[i % 3]}
    return event("ticket.created", no, source="intake", customer=customer, urgency=("urgent", "normal")[i % 2],
                 channel="web", customer_key=f"k-{i}" if i % 4 else None, subject="s", description="d")


async def test_a_batch_of_new_tickets_makes_their_rows_in_its_one_locking_statement(notification: Any) -> None:
    """N ticket.created for new tickets: no upsert per ticket (the prepare makes the rows), one write at the
    flush; each row is what handling its event alone leaves, ``updated_at`` the batch's time."""
    rt = notification.rt
    cfg = load_rules(NotificationSettings().rules_file)
    tag, n = uuid.uuid4().hex[:8], 8
    alone, fresh = [f"A{i}-{tag}" for i in range(n)], [f"F{i}-{tag}" for i in range(n)]
    for i, no in enumerate(alone):
        await usecases.plan_event(rt, event=_created(no, i), cfg=cfg, now=LATER, wake=lambda: None)

    async with rt.transaction() as tx:
        tx.conn = counting = Counting(tx.conn, "notification")
        events = [_created(no, i) for i, no in enumerate(fresh)]
        await usecases.prepare(tx, events)
        assert set(tx.memo[usecases.FACTS]) == set(fresh)  # every ticket held before any event is planned
        for e in events:
            await usecases.plan_event(rt, event=e, cfg=cfg, now=LATER, wake=lambda: None, within=tx)
        batch_time = await tx.conn.fetchval("SELECT now()")
    on_tickets = [s for s in counting.statements if s[1] == "tickets"]
    assert on_tickets == [("WITH", "tickets"), ("UPDATE", "tickets")], on_tickets  # not N inserts

    for a, f in zip(alone, fresh, strict=True):
        assert await _row(rt, f) == await _row(rt, a)
        assert await _plans(rt, f) == await _plans(rt, a)
    assert await rt.pool.fetchval("SELECT count(*) FROM notification.tickets WHERE ticket_no = ANY($1)"
                                  " AND updated_at = $2", fresh, batch_time) == n
    assert (await _row(rt, fresh[1]))["has_phone"] is True and (await _row(rt, fresh[0]))["has_email"] is False
    await _forget(rt, *alone, *fresh)


async def test_a_batch_mixing_new_existing_and_concurrently_made_tickets(notification: Any) -> None:
    """One batch: a new ticket (a fact-less event before its ticket.created), one whose row exists, one whose
    row a concurrent transaction makes while the prepare runs (committed after the prepare's snapshot: in
    neither part of its statement, so not held, and upserted at once), a new ticket whose only fact change
    is None, and one with no fact at all (no row, as alone). Each ends as handling its events alone does."""
    rt = notification.rt
    cfg = load_rules(NotificationSettings().rules_file)
    tag = uuid.uuid4().hex[:8]
    roles = ("new", "known", "raced", "nofact", "nothing")
    ref, got = {r: f"A{r}-{tag}" for r in roles}, {r: f"B{r}-{tag}" for r in roles}

    def before(role: str, no: str) -> list[Any]:  # handled (and committed) before or beside the batch
        return [_created(no, 1)] if role in ("known", "raced") else []

    def batch(role: str, no: str) -> list[Any]:
        routed = event("ticket.routed", no, priority="P2", category="hardware", assignee="agent-1", department="d")
        resolved = event("ticket.resolved", no, source="ticketing", outcome="fixed")
        return {"new": [resolved, _created(no, 2), routed], "known": [routed], "raced": [routed],
                "nofact": [event("ticket.reprioritized", no, source="intake", priority=None, actor="lead")],
                "nothing": [resolved]}[role]

    async def plan(e: Any, tx: Any = None) -> None:
        await usecases.plan_event(rt, event=e, cfg=cfg, now=LATER, wake=lambda: None, within=tx)

    for role, no in ref.items():
        for e in before(role, no) + batch(role, no):
            await plan(e)
    await plan(before("known", got["known"])[0])

    async def the_batch() -> tuple[set[str], list[tuple[str, str | None]]]:
        async with rt.transaction() as tx:
            tx.conn = counting = Counting(tx.conn, "notification")
            events = [e for role, no in got.items() for e in batch(role, no)]
            await usecases.prepare(tx, events)
            held = set(tx.memo[usecases.FACTS])
            for e in events:
                await plan(e, tx)
        return held, [s for s in counting.statements if s[1] == "tickets"]

    async with rt.transaction() as other:  # a replica handles the raced ticket's ticket.created meanwhile
        await plan(before("raced", got["raced"])[0], other)
        task = asyncio.create_task(the_batch())
        blocker = other.conn.get_server_pid()
        for _ in range(500):  # the prepare's insert waits for the replica's uncommitted row
            if await rt.pool.fetchval("SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                                      blocker):
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the prepare never waited for the concurrent insert")
    held, on_tickets = await task

    assert held == {got["new"], got["known"], got["nofact"]}  # the raced one: committed after the snapshot
    # one locking statement that made the new rows, the raced ticket's upsert (the fallback), the fact-less
    # ticket's read (no row: not held, read as alone), one write
    assert on_tickets == [("WITH", "tickets"), ("INSERT", "tickets"), ("SELECT", "tickets"), ("UPDATE", "tickets")], \
        on_tickets
    for role in roles:
        assert await _row(rt, got[role]) == await _row(rt, ref[role]), role
        assert await _plans(rt, got[role]) == await _plans(rt, ref[role]), role
    assert await _row(rt, got["nothing"]) is None  # no fact: no row, as alone
    assert (await _row(rt, got["nofact"])) == {**dict.fromkeys(domain.FACT_FIELDS),
                                               "contact_purged_at": None, "erased_at": None}
    assert (await _row(rt, got["raced"]))["priority"] == "P2" and (await _row(rt, got["raced"]))["language"]
    await _forget(rt, *ref.values(), *got.values())
