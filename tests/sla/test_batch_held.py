"""A batch's events about one ticket share one read of its row and clocks and one write at the flush
(``usecases._Held``): the state each event sees and the state committed are exactly what the same
events give one transaction each, and the batch writes each changed ticket and clock once."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from services.sla import policy, usecases
from services.sla.app import SlaSettings
from services.sla.lifecycle import Reactor
from shared.envelope import new_event
from tests.sla.conftest import routed
from tests.support import Counting
from tests.sla.test_flows import new_ticket

CLOCK = ("metric", "priority", "policy", "calendar", "target_s", "started_at", "segments", "open_since", "warned",
         "breached", "outcome", "stopped_at", "due_at", "warn_at", "fire_at")
TICKET = ("received_at", "channel", "tier", "priority", "category", "waiting", "closed", "intake_seq", "expected_by")


def _events(created: Any, ticket_no: str) -> list[Any]:
    data = {k: v for k, v in created.data.items() if k not in ("ticket_no", "seq")}
    at = created.time
    return [
        new_event(service="intake", type="ticket.created", ticket_no=ticket_no, seq=1, data=data, time=at),
        new_event(service="routing", type="ticket.routed", ticket_no=ticket_no, seq=1, data=routed("P2"),
                  time=at + timedelta(seconds=1)),
        new_event(service="intake", type="ticket.waiting", ticket_no=ticket_no, seq=2, data={"actor": "agent-7", "at": (at + timedelta(seconds=2)).isoformat(), "reason": "parts"},
                  time=at + timedelta(seconds=2)),
        new_event(service="routing", type="ticket.routed", ticket_no=ticket_no, seq=2, data=routed("P3"),
                  time=at + timedelta(seconds=3)),
    ]


async def _state(rt: Any, ticket_no: str) -> tuple[Any, list[Any]]:
    ticket = await rt.pool.fetchrow(f"SELECT {', '.join(TICKET)} FROM sla.tickets WHERE ticket_no = $1", ticket_no)
    clocks = await rt.pool.fetch(f"SELECT {', '.join(CLOCK)} FROM sla.clocks WHERE ticket_no = $1 ORDER BY metric",
                                 ticket_no)
    return dict(ticket), [dict(c) for c in clocks]


def _reactor(rt: Any) -> Reactor:
    settings = SlaSettings()
    return Reactor(policy.load(settings.policy_file, tz=rt.settings.tz),
                   routing_grace=timedelta(seconds=settings.routing_grace_s))


async def test_one_batch_equals_one_transaction_each(sla: Any, intake: Any, tap: Any) -> None:
    rt = sla.rt
    reactor = _reactor(rt)
    no = await new_ticket(intake, urgency="normal")
    [created] = await tap.wait_events(lambda e: e.subject == no and e.type == "ticket.created")
    alone, batched = f"2099{no[4:]}", f"2098{no[4:]}"  # tickets only this test's events are about

    for event in _events(created, alone):
        await usecases.apply_event(rt, reactor, event)
    async with rt.transaction() as tx:
        counting = Counting(tx.conn, "sla")
        tx.conn = counting
        for event in _events(created, batched):
            await usecases.apply_event(rt, reactor, event, within=tx)

    assert await _state(rt, batched) == await _state(rt, alone)
    ticket, clocks = await _state(rt, batched)
    assert (ticket["priority"], ticket["waiting"], ticket["intake_seq"]) == ("P3", True, 2)
    assert {c["metric"] for c in clocks} >= {"first_response", "resolution"}
    sla_tables = Counter(s for s in counting.statements if s[1] in ("tickets", "clocks"))
    # the ticket: read (and locked) once, by the first event's stub-and-lock upsert (store.lock_tickets,
    # a WITH ... INSERT), written once at the flush; its clocks: read once, written once, for four events
    assert sla_tables == {("WITH", "tickets"): 1, ("INSERT", "tickets"): 1, ("SELECT", "clocks"): 1,
                          ("INSERT", "clocks"): 1}, \
        counting.statements


async def test_a_prepared_batch_locks_its_tickets_and_clocks_in_two_statements(sla: Any, intake: Any,
                                                                               tap: Any) -> None:
    """``usecases.prepare`` (the batch's ``prepare`` hook): the batch's tickets, stubs made for the ones
    its created/routed events are about, and their clocks are read and locked before any event applies;
    the events then read nothing more, and commit what one transaction each commits."""
    rt = sla.rt
    reactor = _reactor(rt)
    no = await new_ticket(intake, urgency="normal")
    [created] = await tap.wait_events(lambda e: e.subject == no and e.type == "ticket.created")
    alone, fresh, known = f"2097{no[4:]}", f"2096{no[4:]}", f"2095{no[4:]}"

    for event in _events(created, alone):
        await usecases.apply_event(rt, reactor, event)
    first, *rest = _events(created, known)
    await usecases.apply_event(rt, reactor, first)  # this one's row and clocks exist before the batch

    async with rt.transaction() as tx:
        counting = Counting(tx.conn, "sla")
        tx.conn = counting
        events = _events(created, fresh) + rest
        await usecases.prepare(tx, reactor, events)
        for event in events:
            await usecases.apply_event(rt, reactor, event, within=tx)

    assert await _state(rt, fresh) == await _state(rt, alone)
    assert await _state(rt, known) == await _state(rt, alone)
    sla_tables = Counter(s for s in counting.statements if s[1] in ("tickets", "clocks"))
    # one locking read of both tickets (WITH ... INSERT for the stubs), one of their clocks; one write each
    assert sla_tables == {("WITH", "tickets"): 1, ("SELECT", "clocks"): 1, ("INSERT", "tickets"): 1,
                          ("INSERT", "clocks"): 1}, counting.statements
