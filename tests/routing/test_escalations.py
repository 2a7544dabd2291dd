"""Every escalation trigger through the real broker: whom it reaches is the configured chain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.routing.conftest import created, escalated, event, new_ticket_no, routed, send, slate

AGENTS = [{"id": "e-lin", "department": "technical", "capacity": 5, "lead": "team-lead-gao"},
          {"id": "f-zhang", "department": "finance", "capacity": 5}]


async def _assigned(publisher, tap, subject: str, agent: str) -> str:  # noqa: ANN001
    no = new_ticket_no()
    await send(publisher, created(no, subject=subject))
    [ev] = await tap.wait_events(routed(no))
    assert ev.data["assignee"] == agent, ev.data
    return no


async def test_sla_warning_reaches_the_assignees_lead(routing, publisher, tap):
    await slate(routing, AGENTS)
    no = await _assigned(publisher, tap, "设备死机", "e-lin")
    await send(publisher, event("sla.warning", no, source="sla", metric="first_response"))
    [esc] = await tap.wait_events(escalated(no))
    assert esc.data["level"] == 1 and esc.data["to"] == "team-lead-gao" and esc.data["role"] == "lead"
    assert esc.data["trigger"] == "sla_warning" and "first_response" in esc.data["reason"]
    # an agent without a personal lead: the department's lead
    other = await _assigned(publisher, tap, "申请退款", "f-zhang")
    await send(publisher, event("sla.warning", other, source="sla"))
    [esc] = await tap.wait_events(escalated(other))
    assert esc.data["to"] == "finance-lead-sun" and esc.data["department"] == "finance"


async def test_sla_breach_reaches_supervisor_then_manager_on_the_second(routing, publisher, tap):
    await slate(routing, AGENTS)
    no = await _assigned(publisher, tap, "设备死机", "e-lin")
    await send(publisher, event("sla.breached", no, source="sla", metric="first_response"))
    [first] = await tap.wait_events(escalated(no))
    assert (first.data["level"], first.data["to"], first.data["role"]) == (2, "tech-supervisor-qian", "supervisor")
    await send(publisher, event("sla.breached", no, source="sla", metric="resolution"))
    [_, second] = await tap.wait_events(escalated(no), count=2)
    assert (second.data["level"], second.data["to"], second.data["role"]) == (3, "after-sales-manager", "manager")
    view = (await routing.client.get(f"/v1/assignments/{no}")).json()
    assert view["escalation_level"] == 3 and [e["trigger"] for e in view["escalations"]] == ["sla_breached"] * 2


async def test_negative_survey_reaches_the_manager_with_a_one_hour_callback(routing, publisher, tap):
    await slate(routing, AGENTS)
    no = await _assigned(publisher, tap, "申请退款", "f-zhang")
    await send(publisher, event("ticket.resolved", no))
    before = datetime.now(UTC)
    await send(publisher, event("survey.negative", no, source="survey", reason="overall: very dissatisfied"))
    [esc] = await tap.wait_events(escalated(no))
    assert esc.data["to"] == "after-sales-manager" and esc.data["level"] == 3
    assert esc.data["trigger"] == "survey_negative" and "call the customer back within 60 min" in esc.data["reason"]
    due = datetime.fromisoformat(esc.data["due_at"])
    assert before + timedelta(minutes=59) < due < before + timedelta(minutes=61)


async def test_escalation_request_goes_one_level_up_each_time(routing, publisher, tap):
    await slate(routing, AGENTS)
    no = await _assigned(publisher, tap, "设备死机", "e-lin")
    await send(publisher, event("ticket.escalation_requested", no, reason="需要硬件专家"))
    [one] = await tap.wait_events(escalated(no))
    assert (one.data["level"], one.data["to"], one.data["trigger"]) == (1, "team-lead-gao", "requested")
    assert one.data["reason"] == "需要硬件专家"
    await send(publisher, event("ticket.escalation_requested", no, reason="still stuck", to="expert-he"))
    [_, two] = await tap.wait_events(escalated(no), count=2)
    assert (two.data["level"], two.data["to"]) == (2, "expert-he")


async def test_escalation_to_another_department_transfers_the_ticket(routing, publisher, tap):
    await slate(routing, AGENTS)
    no = await _assigned(publisher, tap, "设备死机", "e-lin")
    await send(publisher, event("ticket.escalation_requested", no, reason="实为退款问题", department="finance"))
    [moved] = await tap.wait_events(routed(no, reason="transferred"))
    assert moved.data["department"] == "finance" and moved.data["assignee"] == "f-zhang"
    [esc] = await tap.wait_events(escalated(no))
    assert esc.data["level"] == 1 and esc.data["to"] == "finance-lead-sun"
    roster = (await routing.client.get("/v1/roster")).json()
    assert {a["id"]: a["load"] for a in roster["agents"]} == {"e-lin": 0, "f-zhang": 1}
    # an unknown department: the manager decides
    await send(publisher, event("ticket.escalation_requested", no, reason="?", department="marketing"))
    [_, esc] = await tap.wait_events(escalated(no), count=2)
    assert esc.data["to"] == "after-sales-manager" and "unknown department marketing" in esc.data["reason"]


async def test_signal_for_a_ticket_never_created_is_retried_then_dead_lettered(routing, publisher, dlq_tap):
    ghost = new_ticket_no()
    ev = event("sla.warning", ghost, source="sla")
    await send(publisher, ev)

    def from_routing(m) -> bool:  # noqa: ANN001  (dead-lettered on the last delivery the limit allows)
        return m.message_id == ev.id and (m.headers or {}).get("x-helpdesk-queue") == "routing.signals"
    [msg] = await dlq_tap.wait_messages(from_routing, timeout=30)
    assert msg.routing_key == "sla.warning"
    # not refused at once: retried until the limit, then dead-lettered naming the last error
    assert msg.headers["x-helpdesk-reason"].startswith("delivery_limit: failed 3 time(s)")
