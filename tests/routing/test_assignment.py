"""Routing through the real broker and database: classify, prioritise, assign, queue, re-route."""

from __future__ import annotations

import asyncio
import uuid

from tests.routing.conftest import created, event, new_ticket_no, routed, send, slate

TECH = [{"id": "t-a", "department": "technical", "capacity": 2},
        {"id": "t-b", "department": "technical", "capacity": 2}]


async def test_intake_ticket_is_routed_and_intake_shows_the_assignee(intake, routing, tap):
    await slate(routing, TECH)
    body = {"channel": "phone", "external_id": f"call-{uuid.uuid4().hex}",
            "customer": {"name": "A公司", "phone": "13812345678", "tier": "vip"},
            "subject": "设备无法启动", "description": "客户报告设备宕机，生产停止"}
    r = await intake.client.post("/v1/tickets", json=body)
    assert r.status_code == 201, r.text
    no = r.json()["ticket_no"]
    [ev] = await tap.wait_events(routed(no))
    assert ev.source == "/helpdesk/routing" and ev.data["seq"] == 1
    assert {k: ev.data[k] for k in ("category", "priority", "department", "rule", "state")} == {
        "category": "fault", "priority": "P1", "department": "technical", "rule": "fault-down", "state": "assigned"}
    assert ev.data["assignee"] in {"t-a", "t-b"} and ev.data["priority_rule"] == "business-stopped"
    for _ in range(100):  # intake applies ticket.routed from its own queue
        view = (await intake.client.get(f"/v1/tickets/{no}")).json()
        if view["status"] == "assigned":
            break
        await asyncio.sleep(0.05)
    assert view["status"] == "assigned" and view["assignment"]["assignee"] == ev.data["assignee"]
    text = (await routing.client.get("/metrics")).text
    assert 'helpdesk_tickets_created_total{category="fault",channel="phone"}' in text
    assert 'helpdesk_routing_decisions_total{category="fault",priority="P1",reason="created",rule="fault-down"' in text


async def test_least_loaded_round_robin_then_queue_oldest_first(routing, publisher, tap):
    await slate(routing, TECH)
    nos = [new_ticket_no() for _ in range(6)]
    assignees = []
    for no in nos:
        await send(publisher, created(no, subject="设备故障", description="屏幕报错"))
        [ev] = await tap.wait_events(routed(no))
        assignees.append(ev.data["assignee"])
    assert assignees[:4] in (["t-a", "t-b", "t-a", "t-b"], ["t-b", "t-a", "t-b", "t-a"])
    assert assignees[4:] == [None, None]
    q = (await routing.client.get("/v1/queue", params={"department": "technical"})).json()
    assert [t["ticket_no"] for t in q["departments"]["technical"]] == nos[4:]
    # nos[0]'s agent resolves it: the oldest queued ticket (nos[4]) goes to them
    await send(publisher, event("ticket.resolved", nos[0]))
    [ev] = await tap.wait_events(routed(nos[4], reason="dequeued"))
    assert ev.data["assignee"] == assignees[0] and ev.data["state"] == "assigned"
    await send(publisher, event("ticket.closed", nos[1]))
    [ev] = await tap.wait_events(routed(nos[5], reason="dequeued"))
    assert ev.data["assignee"] == assignees[1]
    # closing a resolved ticket does not free a slot twice
    extra = new_ticket_no()
    await send(publisher, event("ticket.closed", nos[0]))
    await send(publisher, created(extra, subject="设备故障"))
    [ev] = await tap.wait_events(routed(extra))
    assert ev.data["state"] == "queued"
    roster = (await routing.client.get("/v1/roster")).json()
    loads = {a["id"]: a["load"] for a in roster["agents"]}
    assert loads == {"t-a": 2, "t-b": 2}
    assert next(d for d in roster["departments"] if d["name"] == "technical")["queued"] == 1


async def test_agent_made_available_takes_the_queue_at_once(routing, publisher, tap):
    await slate(routing, [{"id": "f-zhang", "department": "finance", "capacity": 1, "available": False}])
    first, second = new_ticket_no(), new_ticket_no()
    for no in (first, second):
        await send(publisher, created(no, subject="申请退款", description="订单重复扣款，请退款"))
        [ev] = await tap.wait_events(routed(no))
        assert ev.data["state"] == "queued" and ev.data["department"] == "finance" and ev.data["assignee"] is None
    r = await routing.client.patch("/v1/agents/f-zhang", json={"available": True})
    assert r.status_code == 200, r.text
    assert r.json()["assigned_from_queue"] == [first] and r.json()["load"] == 1
    [ev] = await tap.wait_events(routed(first, reason="dequeued"))
    assert ev.data["assignee"] == "f-zhang"
    r = await routing.client.patch("/v1/agents/f-zhang", json={"capacity": 2})
    assert r.json()["assigned_from_queue"] == [second] and sorted(r.json()["tickets"]) == sorted([first, second])
    assert (await routing.client.get("/v1/queue")).json()["total"] == 0


async def test_reprioritize_keeps_owner_and_reopen_returns_to_last_assignee(routing, publisher, tap):
    await slate(routing, TECH)
    no = new_ticket_no()
    await send(publisher, created(no, subject="打印机卡纸报错"))
    [first] = await tap.wait_events(routed(no))
    assert first.data["priority"] == "P3" and first.data["state"] == "assigned"
    await send(publisher, event("ticket.reprioritized", no, priority="P1", previous="P3"))
    [ev] = await tap.wait_events(routed(no, reason="reprioritized"))
    assert ev.data["priority"] == "P1" and ev.data["assignee"] == first.data["assignee"]
    assert ev.data["seq"] == first.data["seq"] + 1
    await send(publisher, event("ticket.resolved", no))
    await send(publisher, event("ticket.reopened", no))
    [ev] = await tap.wait_events(routed(no, reason="reopened"))
    assert ev.data["assignee"] == first.data["assignee"] and ev.data["priority"] == "P1"
    view = (await routing.client.get(f"/v1/assignments/{no}")).json()
    assert [h["action"] for h in view["history"]] == ["created", "reprioritized", "resolved", "reopened"]
    agent = (await routing.client.get(f"/v1/agents/{first.data['assignee']}")).json()
    assert agent["load"] == 1 and agent["tickets"] == [no]


async def test_cross_department_ticket_goes_to_the_manager(routing, publisher, tap):
    await slate(routing, TECH)
    no = new_ticket_no()
    await send(publisher, created(no, subject="设备故障", description="修不好，要求全额退款"))
    [ev] = await tap.wait_events(routed(no))
    assert ev.data["department"] is None and ev.data["assignee"] is None and ev.data["state"] == "unassigned"
    [esc] = await tap.wait_events(lambda e: e.type == "ticket.escalated" and e.subject == no)
    assert esc.data["to"] == "after-sales-manager" and esc.data["level"] == 3
    assert esc.data["trigger"] == "unassignable" and "cross-department" in esc.data["reason"]
    text = (await routing.client.get("/metrics")).text
    assert 'helpdesk_routing_unassigned_backlog{department="-",state="unassigned"}' in text


async def test_department_with_nobody_escalates_and_queues_until_someone_joins(routing, publisher, tap):
    await slate(routing, TECH)
    no = new_ticket_no()
    await send(publisher, created(no, subject="投诉客服态度差", description="客服挂电话"))
    [ev] = await tap.wait_events(routed(no))
    assert ev.data["category"] == "attitude" and ev.data["priority"] == "P2"
    assert ev.data["department"] == "service_quality" and ev.data["state"] == "queued"
    [esc] = await tap.wait_events(lambda e: e.type == "ticket.escalated" and e.subject == no)
    assert esc.data["to"] == "after-sales-manager" and "nobody" in esc.data["reason"]
    r = await routing.client.put("/v1/roster", json={"agents": [*TECH, {"id": "sq-1", "department":
                                                                        "service_quality", "capacity": 3}]})
    assert r.status_code == 200, r.text
    [ev] = await tap.wait_events(routed(no, reason="dequeued"))
    assert ev.data["assignee"] == "sq-1"


async def test_roster_replacement_retires_agents_holding_tickets(routing, publisher, tap):
    await slate(routing, TECH)
    no = new_ticket_no()
    await send(publisher, created(no, subject="系统报错"))
    [ev] = await tap.wait_events(routed(no))
    holder = ev.data["assignee"]
    r = await routing.client.put("/v1/roster", json={"agents": [{"id": "t-c", "department": "technical",
                                                                 "capacity": 1}]})
    body = r.json()
    assert r.status_code == 200 and body["retired"] == [holder]
    agents = {a["id"]: a for a in body["agents"]}
    assert set(agents) == {holder, "t-c"} and agents[holder]["available"] is False
    await send(publisher, event("ticket.closed", no))
    nxt = new_ticket_no()
    await send(publisher, created(nxt, subject="系统报错"))
    [ev] = await tap.wait_events(routed(nxt))
    assert ev.data["assignee"] == "t-c"


async def test_http_needs_api_key_and_names_bad_fields(routing):
    r = await routing.client.get("/v1/roster", headers={"X-API-Key": "nope"})
    assert r.status_code == 401 and r.json()["errors"][0]["field"] == "X-API-Key"
    r = await routing.client.put("/v1/roster", json={"agents": [{"id": "x", "department": "marketing",
                                                                 "capacity": 1}]})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "agents.0.department"
    r = await routing.client.put("/v1/roster", json={"agents": [{"id": "x", "department": "finance",
                                                                 "capacity": -1}]})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "agents.0.capacity"
    r = await routing.client.patch("/v1/agents/ghost", json={"available": True})
    assert r.status_code == 404 and r.json()["errors"][0]["field"] == "agent_id"
    r = await routing.client.patch("/v1/agents/ghost", json={})
    assert r.status_code == 422
    r = await routing.client.get("/v1/rules")
    assert r.status_code == 200 and r.json()["version"] and "fault-down" in r.json()["rules"]
    r = await routing.client.get("/v1/assignments/20990101000001")
    assert r.status_code == 404


async def test_events_routing_cannot_understand_are_dead_lettered_with_the_reason(routing, publisher, dlq_tap):
    await publisher.publish("helpdesk.events", "ticket.created", b"{not json", message_id="bad-1")
    ev = created()
    broken = ev.model_copy(update={"data": {k: v for k, v in ev.data.items() if k != "customer"}})
    await send(publisher, broken)

    def ours(m) -> bool:  # noqa: ANN001
        return (m.headers or {}).get("x-helpdesk-queue") == "routing.tickets"
    msgs = await dlq_tap.wait_messages(ours, count=2)
    reasons = [m.headers["x-helpdesk-reason"] for m in msgs]
    assert any("Invalid JSON" in r or "json" in r.lower() for r in reasons)
    assert any("customer" in r and "Field required" in r for r in reasons)
    r = await routing.client.get("/healthz")
    assert r.status_code == 200


async def test_a_redelivered_ticket_created_is_routed_once(routing, publisher, tap):
    await slate(routing, TECH)
    ev = created(subject="系统报错")
    await asyncio.gather(*(send(publisher, ev) for _ in range(3)))
    await tap.wait_events(routed(ev.subject))
    marker = created(subject="系统报错")  # published after the copies: routed once they are all handled
    await send(publisher, marker)
    await tap.wait_events(routed(marker.subject))
    await asyncio.sleep(0.3)
    assert len(tap.events(routed(ev.subject))) == 1
    roster = (await routing.client.get("/v1/roster")).json()
    assert sum(a["load"] for a in roster["agents"]) == 2


async def test_docs_healthz_and_gauges(routing):
    assert (await routing.client.get("/healthz")).json()["checks"] == {"database": True, "broker": True}
    doc = (await routing.client.get("/asyncapi.json")).json()
    assert any("routing.tickets" in name for name in doc["channels"])
    assert any("routing.signals" in name for name in doc["channels"])
    paths = (await routing.client.get("/openapi.json")).json()["paths"]
    assert {"/v1/roster", "/v1/agents/{agent_id}", "/v1/queue", "/v1/assignments/{ticket_no}"} <= set(paths)
    await slate(routing, TECH)
    text = (await routing.client.get("/metrics")).text
    assert 'helpdesk_routing_agent_load{agent="all",department="technical"} 0.0' in text  # no agent ids
    assert 'agent="t-a"' not in text
    assert 'helpdesk_routing_unassigned_backlog{department="technical",state="queued"} 0.0' in text
