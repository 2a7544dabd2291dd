"""A batch of new tickets costs routing two statements a ticket: its row, and one assignment
(``store.assign_next``: the oldest queued ticket to the least-loaded agent, and whether more wait);
the department is locked once for the batch and its staffing told by that statement too (so a ticket
the drain left queued is escalated only when nobody is on the roster), the history written in one insert; with the batch's prepare, the new tickets are inserted in one
statement. What is decided is what one transaction each decides: round-robin over the least loaded, then queued."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson

from services.routing.usecases import assign
from tests.routing.conftest import created, new_ticket_no, slate
from tests.support import Counting

TECH = [{"id": "t-a", "department": "technical", "capacity": 2},
        {"id": "t-b", "department": "technical", "capacity": 2}]


async def decided_as_one_at_a_time(rt: Any, nos: list[str]) -> None:
    """Six new technical tickets, two agents of capacity 2: four assigned round-robin, two queued; one
    history row and one ``ticket.routed`` (reason ``created``) each — what a transaction each decides."""
    rows = {r["ticket_no"]: r for r in await rt.pool.fetch(
        "SELECT ticket_no, state, assignee FROM routing.tickets WHERE ticket_no = ANY($1)", nos)}
    assert [rows[n]["state"] for n in nos] == ["assigned"] * 4 + ["queued"] * 2
    assignees = [rows[n]["assignee"] for n in nos[:4]]
    assert assignees in (["t-a", "t-b", "t-a", "t-b"], ["t-b", "t-a", "t-b", "t-a"])
    history = await rt.pool.fetch("SELECT ticket_no, action, agent FROM routing.assignments"
                                  " WHERE ticket_no = ANY($1) ORDER BY id", nos)
    assert [(h["ticket_no"], h["action"], h["agent"]) for h in history] == \
        [(n, "created", a) for n, a in zip(nos, assignees + [None, None], strict=True)]
    assert dict(await rt.pool.fetch("SELECT id, load FROM routing.agents")) == {"t-a": 2, "t-b": 2}
    outbox = await rt.pool.fetch("SELECT ticket_no, body FROM routing.outbox WHERE ticket_no = ANY($1)", nos)
    assert sorted(r["ticket_no"] for r in outbox) == sorted(nos)  # one ticket.routed each
    said = {r["ticket_no"]: orjson.loads(r["body"])["data"] for r in outbox}
    assert [(said[n]["state"], said[n]["assignee"], said[n]["reason"]) for n in nos] == \
        [("assigned", a, "created") for a in assignees] + [("queued", None, "created")] * 2
    assert {said[n]["department"] for n in nos} == {"technical"}


async def test_a_batch_of_new_tickets(routing: Any) -> None:
    rt, rules = routing.rt, routing.app.state.rules
    await slate(routing, TECH)
    nos = [new_ticket_no() for _ in range(6)]
    async with rt.transaction(batch_ids=[]) as tx:
        tx.conn = counting = Counting(tx.conn, "routing")
        for no in nos:
            await assign.route_created(rt, rules, created(no, subject="设备故障", description="屏幕报错"), within=tx)
    await decided_as_one_at_a_time(rt, nos)

    on_tables = Counter(s for s in counting.statements if s[1] in ("tickets", "agents", "departments", "assignments"))
    assert on_tables == {
        ("SELECT", "departments"): 1,  # the department's lock, once
        ("INSERT", "tickets"): 6,
        ("WITH", "tickets"): 6,  # assign_next: four assigned (the queue then empty), two find nobody with room
        # and tell that the roster has somebody (no look-up of the roster of its own); the two left queued
        # are announced from their inserted rows, not read again
        ("INSERT", "assignments"): 1,
    }, counting.statements


async def test_the_drain_tells_whether_anybody_is_on_the_roster(routing: Any) -> None:
    """A department with nobody on its roster escalates its new ticket (unassignable), one whose agents
    are all busy keeps it queued: both known from the drain's own statement, no look-up of the roster."""
    rt, rules = routing.rt, routing.app.state.rules
    await slate(routing, [{"id": "t-a", "department": "technical", "capacity": 1}])  # nobody in finance
    busy, spare, unstaffed = new_ticket_no(), new_ticket_no(), new_ticket_no()
    async with rt.transaction(batch_ids=[]) as tx:
        tx.conn = counting = Counting(tx.conn, "routing")
        for no, subject in ((busy, "设备故障"), (spare, "设备故障"), (unstaffed, "我要退款，商品不想要了")):
            await assign.route_created(rt, rules, created(no, subject=subject), within=tx)
    assert ("SELECT", "agents") not in counting.statements
    rows = dict(await rt.pool.fetch("SELECT ticket_no, state FROM routing.tickets WHERE ticket_no = ANY($1)",
                                    [busy, spare, unstaffed]))
    assert rows[busy] == "assigned" and rows[spare] == "queued"
    bodies = [orjson.loads(r["body"]) for r in await rt.pool.fetch(
        "SELECT body FROM routing.outbox WHERE ticket_no = ANY($1) ORDER BY id", [spare, unstaffed])]
    escalated = [(b["subject"], b["data"]["trigger"], b["data"]["reason"]) for b in bodies
                 if b["type"] == "ticket.escalated"]
    assert [(n, t) for n, t, _ in escalated] == [(unstaffed, "unassignable")], escalated
    assert "finance has nobody on its roster" in escalated[0][2]


async def test_a_batch_inserts_its_new_tickets_in_one_statement_and_announces_each_once(routing: Any) -> None:
    """With the batch's prepare, the new tickets are inserted together before the handlers run; the first
    ticket's drain then assigns the later ones too (oldest first), each announced once, as ``created``, and
    their own handlers find nothing left to do. A copy of a message, a message the consumer processed
    before and a second ``ticket.created`` for a ticket change nothing. Decided exactly as above."""
    rt, rules = routing.rt, routing.app.state.rules
    await slate(routing, TECH)
    nos = [new_ticket_no() for _ in range(6)]
    events = [created(no, subject="设备故障", description="屏幕报错") for no in nos]
    again = created(nos[0], subject="另一条", description="屏幕报错")  # the same ticket, another event
    seen_before = created(new_ticket_no(), subject="设备故障")
    async with rt.unit(consumer=assign.CONSUMER, message_id=seen_before.id) as u:
        assert not u.duplicate  # processed earlier (its ticket never inserted: so a re-insert would show)
    batch = [*events[:3], events[1], again, seen_before, *events[3:]]
    async with rt.transaction(batch_ids=[e.id for e in batch]) as tx:
        tx.conn = counting = Counting(tx.conn, "routing")
        await assign.prepare_created(rules, batch, tx)
        for e in batch:
            await assign.route_created(rt, rules, e, within=tx)
    assert not await rt.pool.fetchval("SELECT count(*) FROM routing.tickets WHERE ticket_no = $1",
                                      seen_before.ticket_no)  # left out: processed before
    await decided_as_one_at_a_time(rt, nos)
    inserts = [s for s in counting.statements if s[:2] == ("INSERT", "tickets")]
    assert len(inserts) == 2, counting.statements  # the batch's, and the second ticket.created's own try
