"""Every lifecycle command over HTTP and AMQP, the state machine, first response and first contact."""

from __future__ import annotations

import uuid

from tests.integration.test_intake_create import ticket


async def new_ticket(intake) -> str:
    r = await intake.client.post("/v1/tickets", json=ticket())
    assert r.status_code == 201
    return r.json()["ticket_no"]


async def cmd(intake, no: str, action: str, **body):
    body.setdefault("actor", "agent-7")
    return await intake.client.post(f"/v1/tickets/{no}/{action}", json=body)


async def route(intake, publisher, no: str, assignee: str | None, seq: int = 1, priority: str = "P2") -> None:
    """Play routing: publish a ticket.routed event as the routing service would."""
    from shared.envelope import new_event

    event = new_event(service="routing", type="ticket.routed", ticket_no=no, seq=seq, data={
        "category": "fault", "priority": priority, "department": "technical", "assignee": assignee,
        "rule": "test"})
    await publisher.publish("helpdesk.events", "ticket.routed", event.to_bytes(),
                            content_type="application/cloudevents+json", message_id=event.id)


async def wait_status(intake, no: str, status: str) -> dict:
    import asyncio

    for _ in range(100):
        view = (await intake.client.get(f"/v1/tickets/{no}")).json()
        if view["status"] == status:
            return view
        await asyncio.sleep(0.05)
    raise AssertionError(f"{no} never became {status}: {view['status']}")


async def test_full_lifecycle_over_http(intake, tap, publisher):
    no = await new_ticket(intake)
    await route(intake, publisher, no, "agent-7")
    view = await wait_status(intake, no, "assigned")
    assert view["assignment"]["assignee"] == "agent-7" and view["assignment"]["priority"] == "P2"

    r = await cmd(intake, no, "respond", message="您好，我们正在远程排查")
    assert r.status_code == 200 and r.json()["status"] == "in_progress"
    assert (await cmd(intake, no, "progress", note="已远程重启", visible_to_customer=True)).status_code == 200
    assert (await cmd(intake, no, "wait", reason="等待客户截图")).json()["status"] == "waiting"
    assert (await cmd(intake, no, "resume")).json()["status"] == "in_progress"
    r = await cmd(intake, no, "resolve", outcome="resolved", solution="更换电源模块 PWR-01")
    assert r.json()["status"] == "resolved" and r.json()["handling"]["first_contact"] is True
    assert (await cmd(intake, no, "close")).json()["status"] == "closed"

    types = ["ticket.created", "ticket.responded", "ticket.progressed", "ticket.waiting", "ticket.resumed",
             "ticket.resolved", "ticket.closed"]
    events = await tap.wait_events(lambda e: e.subject == no and e.source == "/helpdesk/intake", count=len(types))
    assert [e.type for e in sorted(events, key=lambda e: e.data["seq"])] == types
    assert [e.data["seq"] for e in sorted(events, key=lambda e: e.data["seq"])] == list(range(1, 8))
    responded = next(e for e in events if e.type == "ticket.responded")
    assert responded.data["first"] is True and responded.data["actor"] == "agent-7"
    resolved = next(e for e in events if e.type == "ticket.resolved")
    assert resolved.data["first_contact"] is True and resolved.data["outcome"] == "resolved"

    view = (await intake.client.get(f"/v1/tickets/{no}")).json()
    assert [e["type"] for e in view["timeline"]].count("ticket.routed") == 1
    assert len(view["timeline"]) == 8


async def test_second_response_is_not_first_and_breaks_first_contact(intake, tap):
    no = await new_ticket(intake)
    await cmd(intake, no, "respond")
    await cmd(intake, no, "respond")
    r = await cmd(intake, no, "resolve", outcome="resolved", solution="寄送视频教程并电话指导")
    assert r.json()["handling"]["first_contact"] is False
    events = await tap.wait_events(lambda e: e.subject == no and e.type == "ticket.responded", count=2)
    assert sorted(e.data["first"] for e in events) == [False, True]


async def test_first_contact_false_when_escalated_reopened_or_reassigned(intake, publisher):
    esc = await new_ticket(intake)
    r = await cmd(intake, esc, "escalate", reason="需要财务协助", department="finance")
    assert r.status_code == 200 and r.json()["handling"]["escalated"] is True
    r = await cmd(intake, esc, "resolve", outcome="resolved", solution="退款300元")
    assert r.json()["handling"]["first_contact"] is False

    reo = await new_ticket(intake)
    await cmd(intake, reo, "resolve", outcome="resolved", solution="远程重启指导")
    r = await cmd(intake, reo, "reopen", reason="客户反馈问题复现")
    assert r.json()["status"] == "in_progress" and r.json()["handling"]["reopened"] == 1
    r = await cmd(intake, reo, "resolve", outcome="resolved", solution="更换主板")
    assert r.json()["handling"]["first_contact"] is False

    moved = await new_ticket(intake)
    await route(intake, publisher, moved, "agent-1", seq=1)
    await wait_status(intake, moved, "assigned")
    await route(intake, publisher, moved, "agent-2", seq=2)
    import asyncio

    for _ in range(100):
        if (await intake.client.get(f"/v1/tickets/{moved}")).json()["assignment"]["assignee"] == "agent-2":
            break
        await asyncio.sleep(0.05)
    r = await cmd(intake, moved, "resolve", actor="agent-2", outcome="resolved", solution="更换电源适配器")
    assert r.json()["handling"]["first_contact"] is False

    partial = await new_ticket(intake)
    r = await cmd(intake, partial, "resolve", outcome="partial", solution="临时更换备用机")
    assert r.json()["handling"]["first_contact"] is False


async def test_stale_routed_event_does_not_override_newer(intake, publisher):
    no = await new_ticket(intake)
    await route(intake, publisher, no, "agent-2", seq=2, priority="P1")
    view = await wait_status(intake, no, "assigned")
    await route(intake, publisher, no, "agent-1", seq=1, priority="P3")
    import asyncio

    for _ in range(50):
        view = (await intake.client.get(f"/v1/tickets/{no}")).json()
        if len(view["timeline"]) == 3:
            break
        await asyncio.sleep(0.05)
    assert len(view["timeline"]) == 3
    assert view["assignment"]["assignee"] == "agent-2" and view["assignment"]["priority"] == "P1"


async def test_every_command_over_amqp(intake, tap, publisher):
    no = await new_ticket(intake)
    steps = [
        ("respond", {"message": "收到"}), ("progress", {"note": "排查中"}), ("wait", {}), ("resume", {}),
        ("escalate", {"reason": "跨部门"}), ("reprioritize", {"priority": "P1", "reason": "客户产线停工"}),
        ("resolve", {"outcome": "resolved", "solution": "更换电源模块 PWR-01"}), ("reopen", {"reason": "复发"}),
        ("resolve", {"outcome": "resolved", "solution": "更换主板 MB-2"}), ("close", {}),
    ]
    for action, body in steps:
        await publisher.publish("helpdesk.commands", f"ticket.{action}",
                                {"ticket_no": no, "actor": "agent-9", "command_id": uuid.uuid4().hex, **body})
        # commands to one ticket are applied in order; wait for each to land before the next
        await tap.wait_events(lambda e, a=action: e.subject == no and e.type != "ticket.created", count=len(
            [s for s in steps[: steps.index((action, body)) + 1]]))
    events = tap.events(lambda e: e.subject == no and e.source == "/helpdesk/intake")
    types = [e.type for e in sorted(events, key=lambda e: e.data["seq"])]
    assert types == ["ticket.created", "ticket.responded", "ticket.progressed", "ticket.waiting", "ticket.resumed",
                     "ticket.escalation_requested", "ticket.reprioritized", "ticket.resolved", "ticket.reopened",
                     "ticket.resolved", "ticket.closed"]
    view = (await intake.client.get(f"/v1/tickets/{no}")).json()
    assert view["status"] == "closed" and view["assignment"]["priority"] == "P1"


async def test_repeated_command_id_applies_once(intake, tap):
    no = await new_ticket(intake)
    for _ in range(3):
        r = await cmd(intake, no, "respond", command_id="desk-42")
        assert r.status_code == 200
    view = (await intake.client.get(f"/v1/tickets/{no}")).json()
    assert view["handling"]["responses"] == 1
    await tap.wait_events(lambda e: e.subject == no and e.type == "ticket.responded")
    import asyncio

    await asyncio.sleep(0.5)
    assert len(tap.events(lambda e: e.subject == no and e.type == "ticket.responded")) == 1


async def test_complaint_fields_kept(intake, tap):
    body = ticket(complaint={"type": "attitude", "involved_staff": ["工号1024"], "demand": "道歉并补偿"})
    r = await intake.client.post("/v1/tickets", json=body)
    no = r.json()["ticket_no"]
    [created] = await tap.wait_events(lambda e: e.subject == no and e.type == "ticket.created")
    assert created.data["complaint"] == {"type": "attitude", "involved_staff": ["工号1024"], "demand": "道歉并补偿"}
    # records (#14): a complaint is resolved only with a responsibility and a remedy
    r = await cmd(intake, no, "determine", responsibility="internal", department="service", remedy="coupon", amount=50)
    r = await cmd(intake, no, "resolve", outcome="resolved", solution="主管致歉并赠送50元优惠券")
    [resolved] = await tap.wait_events(lambda e: e.subject == no and e.type == "ticket.resolved")
    assert resolved.data["complaint"] is True
    assert (await intake.client.get(f"/v1/tickets/{no}")).json()["complaint"]["type"] == "attitude"


async def test_rapid_commands_over_amqp_apply_in_the_order_sent(intake, tap, publisher):
    """Commands for one ticket published back to back (no waiting) are applied in order."""
    import asyncio

    numbers = [await new_ticket(intake) for _ in range(5)]
    steps = [("respond", {}), ("progress", {"note": "排查中"}), ("wait", {}), ("resume", {}),
             ("resolve", {"outcome": "resolved", "solution": "更换电源模块 PWR-01"}), ("close", {})]
    for action, body in steps:
        for no in numbers:
            await publisher.publish("helpdesk.commands", f"ticket.{action}", {"ticket_no": no, "actor": "a", **body})
    expected = ["ticket.created", "ticket.responded", "ticket.progressed", "ticket.waiting", "ticket.resumed",
                "ticket.resolved", "ticket.closed"]
    await tap.wait_events(lambda e: e.subject in numbers and e.type == "ticket.closed", count=5, timeout=30)
    await asyncio.sleep(0.2)
    for no in numbers:
        events = sorted(tap.events(lambda e, no=no: e.subject == no and e.source == "/helpdesk/intake"),
                        key=lambda e: e.data["seq"])
        assert [e.type for e in events] == expected
