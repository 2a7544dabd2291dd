"""Intake applies routing's decisions to the ticket in one statement (``store.apply_routed``): the latest
decision by routing's ``seq`` wins whatever the arrival order, the first assignee is kept, a new ticket
with an assignee becomes ``assigned``, a redelivered decision changes nothing, and every decision still
joins the timeline once. Real Postgres, the intake service's own use case."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from services.intake import usecases
from shared.envelope import CloudEvent
from shared.errors import DomainError

pytestmark = pytest.mark.asyncio(loop_scope="session")


def routed(ticket_no: str, seq: int, assignee: str | None, priority: str) -> CloudEvent:
    return CloudEvent(id=str(uuid.uuid4()), source="/helpdesk/routing", type="ticket.routed",
                      time=datetime.now(UTC),
                      data={"ticket_no": ticket_no, "seq": seq, "category": "fault", "priority": priority,
                            "department": "technical", "assignee": assignee, "rule": f"rule-{seq}"})


async def _ticket(intake: Any) -> str:
    r = await intake.client.post("/v1/tickets", json={
        "channel": "web", "external_id": f"web-{uuid.uuid4().hex}", "customer": {"name": "李雷"},
        "subject": "设备无法启动", "description": "按电源键没有反应"})
    assert r.status_code == 201, r.text
    return r.json()["ticket_no"]


async def _row(intake: Any, ticket_no: str) -> dict[str, Any]:
    row = await intake.rt.pool.fetchrow(
        "SELECT status, assignee, first_assignee, priority, rule, routed_seq,"
        " (SELECT count(*) FROM intake.timeline WHERE ticket_no = $1 AND type = 'ticket.routed') AS routed_events"
        " FROM intake.tickets WHERE ticket_no = $1", ticket_no)
    return dict(row)


async def test_the_latest_decision_wins_and_the_first_assignee_stays(intake: Any) -> None:
    rt = intake.rt
    no = await _ticket(intake)
    queued = routed(no, 1, None, "P3")  # no agent free: queued, still new
    await usecases.record_event(rt, event=queued)
    assert await _row(intake, no) == {"status": "new", "assignee": None, "first_assignee": None, "priority": "P3",
                                      "rule": "rule-1", "routed_seq": 1, "routed_events": 1}
    third, second = routed(no, 3, "agent-9", "P1"), routed(no, 2, "agent-7", "P2")
    await usecases.record_event(rt, event=third)  # overtook the second
    await usecases.record_event(rt, event=second)  # late: changes nothing but the timeline
    want = {"status": "assigned", "assignee": "agent-9", "first_assignee": "agent-9", "priority": "P1",
            "rule": "rule-3", "routed_seq": 3, "routed_events": 3}
    assert await _row(intake, no) == want
    await usecases.record_event(rt, event=third)  # redelivered
    assert await _row(intake, no) == want
    await usecases.record_event(rt, event=routed(no, 4, "agent-2", "P1"))
    row = await _row(intake, no)
    assert (row["assignee"], row["first_assignee"], row["routed_seq"]) == ("agent-2", "agent-9", 4)


async def test_a_decision_about_an_unknown_ticket_is_refused(intake: Any) -> None:
    with pytest.raises(DomainError, match="unknown ticket"):
        await usecases.record_event(intake.rt, event=routed("20991231999999", 1, "agent-1", "P3"))


async def test_a_batch_of_decisions_applies_as_one_statement_each_would(intake: Any) -> None:
    """Staged (``u.stage``) and written at the batch's flush: one locking read and one write for every
    decision of the batch, and the same ticket as the decisions one transaction each (above)."""
    from tests.support import Counting

    rt = intake.rt
    alone, batched = await _ticket(intake), await _ticket(intake)

    def decisions(no: str) -> list[CloudEvent]:
        return [routed(no, 1, None, "P3"), routed(no, 3, "agent-9", "P1"), routed(no, 2, "agent-7", "P2"),
                routed(no, 3, "agent-9", "P1"), routed(no, 4, "agent-2", "P1")]

    for e in decisions(alone):
        await usecases.record_event(rt, event=e)
    async with rt.transaction() as tx:
        tx.conn = counting = Counting(tx.conn, "intake")
        for e in decisions(batched):
            await usecases.record_event(rt, event=e, within=tx)
    assert await _row(intake, batched) == await _row(intake, alone)
    row = await _row(intake, batched)
    assert (row["status"], row["assignee"], row["first_assignee"], row["routed_seq"]) == \
        ("assigned", "agent-2", "agent-9", 4)
    on_tickets = [s for s in counting.statements if s[1] == "tickets"]
    assert on_tickets == [("SELECT", "tickets"), ("UPDATE", "tickets")], counting.statements
