"""Records (#14) through the real broker and database: intake's new fields, the records commands over
HTTP and AMQP, the complaint rule, late responses, the revisit and step clocks (sla) and routing on the
warranty and the diagnosis (routing)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from shared.topology import REASON_HEADER
from tests.records.conftest import body, cmd, create, of, phone, view_when

COMPLAINT = {"type": "quality", "involved_staff": ["工号1024"], "demand": "换货并补偿"}


async def test_intake_fields_are_published_stored_and_customer_type_computed(intake, tap):
    mobile = phone()
    first = await create(intake, customer={"name": "A公司", "phone": mobile}, product="笔记本电脑",
                         product_model="LT-14 Pro", purchase_date="2026-01-05", invoice_no="INV-001",
                         service_type="repair", expected_by=(datetime.now(UTC) + timedelta(days=2)).isoformat())
    [created] = await tap.wait_events(of(first, "ticket.created"))
    d = created.data
    assert (d["product_model"], d["purchase_date"], d["invoice_no"], d["service_type"]) == (
        "LT-14 Pro", "2026-01-05", "INV-001", "repair")
    assert d["customer_type"] == "new" and d["expected_by"]
    assert d["warranty"]["in_warranty"] is True and d["warranty"]["product_line"] == "computer"
    assert d["warranty"]["entitlement"] in ("repair", "exchange", "return") and d["warranty"]["reason"]
    again = await create(intake, customer={"name": "A公司", "phone": f"+86 {mobile}"}, subject="又坏了")
    [second] = await tap.wait_events(of(again, "ticket.created"))
    assert second.data["customer_type"] == "returning"  # same customer (normalised phone), earlier ticket
    view = (await intake.client.get(f"/v1/tickets/{first}")).json()
    assert view["product_model"] == "LT-14 Pro" and view["invoice_no"] == "INV-001"
    assert view["warranty"]["product_line"] == "computer" and view["customer_type"] == "new"
    assert view["timeline"][0]["data"]["warranty"] == d["warranty"]
    assert mobile not in str(view["timeline"]) and mobile not in created.to_bytes().decode()


async def test_two_failed_repairs_of_the_unit_entitle_exchange(intake, tap):
    mobile, invoice = phone(), f"INV-{uuid.uuid4().hex[:8]}"
    unit = {"customer": {"name": "王女士", "phone": mobile}, "product": "冰箱", "invoice_no": invoice,
            "purchase_date": (date.today() - timedelta(days=200)).isoformat(), "service_type": "repair"}
    for _ in range(2):
        no = await create(intake, **unit, subject="冰箱不制冷")
        await cmd(intake, no, "diagnose", result="压缩机故障", cause="hardware", sub_item="compressor")
        await cmd(intake, no, "resolve", outcome="resolved", solution="更换压缩机启动器")
    third = await create(intake, **unit, subject="冰箱还是不制冷")
    [created] = await tap.wait_events(of(third, "ticket.created"))
    w = created.data["warranty"]
    assert (w["entitlement"], w["failed_repairs"], w["in_warranty"]) == ("exchange", 2, True)


async def test_bad_new_fields_get_a_4xx_naming_the_field(intake, dlq_tap, publisher):
    now = datetime.now(UTC)
    cases = [
        ({"service_type": "fix"}, "service_type"),
        ({"purchase_date": "not-a-date"}, "purchase_date"),
        ({"purchase_date": (date.today() + timedelta(days=3)).isoformat()}, "purchase_date"),
        ({"expected_by": (now - timedelta(hours=1)).isoformat()}, "expected_by"),
        ({"expected_by": "2026-12-01T10:00:00"}, "expected_by"),  # no offset
        ({"product_model": "x" * 201}, "product_model"),
        ({"invoice_no": ""}, "invoice_no"),
    ]
    for over, field in cases:
        r = await intake.client.post("/v1/tickets", json=body(**over))
        assert 400 <= r.status_code < 500 and field in r.text, (over, r.status_code, r.text)
    mid = f"bad-svc-{uuid.uuid4().hex}"
    await publisher.publish("helpdesk.intake", "intake.phone", body(service_type="fix"), message_id=mid)
    [m] = await dlq_tap.wait_messages(lambda m: m.message_id == mid)
    assert "service_type" in m.headers[REASON_HEADER]


async def test_every_records_command_over_http(intake, tap):
    no = await create(intake, subject="设备无法启动", product="工控主机")
    view = await cmd(intake, no, "diagnose", result="电源模块烧毁", cause="hardware", sub_item="power module",
                     responsibility="product_quality")
    assert view["diagnosis"]["sub_item"] == "power module" and view["cause"] == "hardware"
    when = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    view = await cmd(intake, no, "schedule", appointment_at=when, place="上海市浦东新区张江路88号3楼")
    assert view["appointment"]["place"] == "上海市浦东新****"  # personal: masked in the view
    await cmd(intake, no, "resolve", outcome="resolved", solution="上门更换电源模块 PWR-01")
    view = await cmd(intake, no, "revisit", outcome="客户确认设备正常", satisfied=True)
    assert view["revisit"]["satisfied"] is True
    events = {e.type: e for e in await tap.wait_events(lambda e: e.subject == no and e.source == "/helpdesk/intake",
                                                       count=5)}
    assert events["ticket.diagnosed"].data["cause"] == "hardware"
    assert events["ticket.diagnosed"].data["responsibility"] == "product_quality"
    assert events["ticket.scheduled"].data["place"] == "上海市浦东新****"
    assert "张江路" not in str(view["timeline"])
    resolved = events["ticket.resolved"].data
    assert (resolved["cause"], resolved["sub_item"]) == ("hardware", "power module")  # from the diagnosis
    assert events["ticket.revisited"].data["outcome"] == "客户确认设备正常"
    types = [e["type"] for e in view["timeline"]]
    for t in ("ticket.diagnosed", "ticket.scheduled", "ticket.resolved", "ticket.revisited"):
        assert t in types


async def test_records_commands_over_amqp_and_their_dead_letters(intake, tap, dlq_tap, publisher):
    no = await create(intake, subject="货物破损", complaint=COMPLAINT)
    base = {"ticket_no": no, "actor": "agent-9"}
    await publisher.publish("helpdesk.commands", "ticket.verify",
                            {**base, "method": "call_recording", "findings": "录音确认外箱破损"})
    await publisher.publish("helpdesk.commands", "ticket.determine",
                            {**base, "responsibility": "third_party", "department": "logistics", "remedy": "coupon",
                             "amount": "50", "customer_accepted": True})
    [verified] = await tap.wait_events(of(no, "ticket.verified"))
    [determined] = await tap.wait_events(of(no, "ticket.determined"))
    assert verified.data["method"] == "call_recording"
    assert (determined.data["responsibility"], determined.data["remedy"], determined.data["amount"]) == (
        "third_party", "coupon", 50.0)
    other = await create(intake, subject="请问如何设置")
    marker = uuid.uuid4().hex
    bad = [
        ("ticket.verify", {"ticket_no": other, "actor": "a", "method": "cctv", "findings": "x"}, "complaints"),
        ("ticket.revisit", {"ticket_no": other, "actor": "a", "outcome": "x", "satisfied": True},
         "cannot revisit a ticket that is"),
        ("ticket.diagnose", {"ticket_no": other, "actor": "a", "result": "x", "cause": "magic"}, "cause"),
        ("ticket.determine", {**base, "responsibility": "internal", "remedy": "apology"}, "department"),
    ]
    for i, (key, payload, _) in enumerate(bad):
        await publisher.publish("helpdesk.commands", key, payload, message_id=f"{marker}-{i}")
    dead = await dlq_tap.wait_messages(lambda m: (m.message_id or "").startswith(marker), count=len(bad))
    reasons = {m.message_id: m.headers[REASON_HEADER] for m in dead}
    for i, (_, _, why) in enumerate(bad):
        assert why in reasons[f"{marker}-{i}"], reasons


async def test_disallowed_commands_are_409_naming_the_reason(intake):
    no = await create(intake, subject="请问如何设置")
    r = await intake.client.post(f"/v1/tickets/{no}/verify", json={"actor": "a", "method": "cctv", "findings": "x"})
    assert r.status_code == 409 and "complaints" in r.text and "action" in r.text
    r = await intake.client.post(f"/v1/tickets/{no}/revisit", json={"actor": "a", "outcome": "x", "satisfied": True})
    assert r.status_code == 409 and "cannot revisit a ticket that is new" in r.text
    await cmd(intake, no, "close")
    r = await intake.client.post(f"/v1/tickets/{no}/schedule", json={
        "actor": "a", "appointment_at": (datetime.now(UTC) + timedelta(hours=3)).isoformat(), "place": "北京"})
    assert r.status_code == 409 and "cannot schedule a ticket that is closed" in r.text
    r = await intake.client.post(f"/v1/tickets/{no}/diagnose", json={"actor": "a", "result": "x", "cause": "magic"})
    assert r.status_code == 422 and "cause" in r.text


async def test_complaint_needs_responsibility_and_remedy_before_resolve(intake, tap):
    no = await create(intake, subject="服务态度差", complaint={"type": "attitude"})
    r = await intake.client.post(f"/v1/tickets/{no}/resolve",
                                 json={"actor": "a", "outcome": "resolved", "solution": "主管致电道歉"})
    assert r.status_code == 409, r.text
    assert "responsibility" in r.text and "remedy" in r.text
    r = await intake.client.post(f"/v1/tickets/{no}/determine",
                                 json={"actor": "a", "responsibility": "internal", "remedy": "apology"})
    assert r.status_code == 422 and "department" in r.text
    r = await intake.client.post(f"/v1/tickets/{no}/determine",
                                 json={"actor": "a", "responsibility": "internal", "department": "客服部",
                                       "remedy": "refund"})
    assert r.status_code == 422 and "amount" in r.text
    await cmd(intake, no, "determine", responsibility="internal", department="客服部", remedy="apology",
              customer_accepted=True)
    view = await cmd(intake, no, "resolve", outcome="resolved", solution="主管致电道歉，客户接受")
    assert view["status"] == "resolved" and view["determination"]["department"] == "客服部"


async def test_resolve_may_carry_cause_and_sub_item(intake, tap):
    no = await create(intake, subject="软件闪退")
    await cmd(intake, no, "resolve", outcome="resolved", solution="升级固件到 v2.3.1", cause="software",
              sub_item="firmware")
    [resolved] = await tap.wait_events(of(no, "ticket.resolved"))
    assert (resolved.data["cause"], resolved.data["sub_item"]) == ("software", "firmware")
    assert (await intake.client.get(f"/v1/tickets/{no}")).json()["cause"] == "software"


async def test_late_first_response_is_marked_with_its_reason(stack, tap):
    intake = stack["intake"]
    no = await create(intake, subject="生产线停机，设备无法启动")  # routing: P1, first response 4 s
    await tap.wait_events(of(no, "sla.breached", metric="first_response"), timeout=20)
    await view_when(intake, no, lambda v: any(e["type"] == "sla.breached" for e in v["timeline"]))
    await cmd(intake, no, "respond", message="工程师已联系", late_reason="夜间值班人员不足")
    await cmd(intake, no, "respond", message="第二次回复")
    responded = sorted(await tap.wait_events(of(no, "ticket.responded"), count=2), key=lambda e: e.data["seq"])
    assert responded[0].data["late"] is True and responded[0].data["late_reason"] == "夜间值班人员不足"
    assert responded[1].data["late"] is False
    on_time = await create(intake, subject="请问如何设置")
    await cmd(intake, on_time, "respond", message="您好")
    [r] = await tap.wait_events(of(on_time, "ticket.responded"))
    assert r.data["late"] is False and r.data["late_reason"] is None


async def test_expected_by_tightens_the_resolution_clock(stack, tap):
    expected = datetime.now(UTC) + timedelta(hours=3)  # P3 resolution here: 48 h
    no = await create(stack["intake"], subject="请问如何设置", expected_by=expected.isoformat())
    started = await tap.wait_events(of(no, "sla.started", metric="resolution"))
    assert started[-1].data["target"] == "expected_by" and started[-1].data["policy"] == "expected_by"
    assert abs(datetime.fromisoformat(started[-1].data["due_at"]) - expected) < timedelta(seconds=1)
    later = await create(stack["intake"], subject="请问如何设置",
                         expected_by=(datetime.now(UTC) + timedelta(days=30)).isoformat())
    [s] = (await tap.wait_events(of(later, "sla.started", metric="resolution")))[-1:]
    assert s.data["target"] == "policy"


async def test_revisit_clock_met_by_the_call_and_breach_escalated(stack, tap):
    intake = stack["intake"]
    no = await create(intake, subject="服务态度差", complaint={"type": "attitude"})
    await cmd(intake, no, "determine", responsibility="customer_misunderstanding", remedy="apology")
    await cmd(intake, no, "resolve", outcome="resolved", solution="解释政策并致歉")
    [started] = await tap.wait_events(of(no, "sla.started", metric="revisit"))
    await cmd(intake, no, "revisit", outcome="客户表示理解", satisfied=True)
    [met] = await tap.wait_events(of(no, "sla.met", metric="revisit"))
    assert met.data["due_at"] == started.data["due_at"]
    late = await create(intake, subject="服务态度差", complaint={"type": "attitude"})
    await cmd(intake, late, "determine", responsibility="internal", department="客服部", remedy="apology")
    await cmd(intake, late, "resolve", outcome="resolved", solution="主管致歉")
    await tap.wait_events(of(late, "sla.breached", metric="revisit"), timeout=20)
    [esc] = await tap.wait_events(of(late, "ticket.escalated", trigger="sla_breached"), timeout=20)
    assert "revisit" in esc.data["reason"]
    plain = await create(intake, subject="请问如何设置")
    await cmd(intake, plain, "resolve", outcome="resolved", solution="发送视频教程并电话指导")
    await tap.wait_events(of(plain, "sla.met", metric="resolution"))
    assert not tap.events(of(plain, "sla.started", metric="revisit"))  # not a complaint: no revisit


async def test_step_breach_is_escalated_to_the_handlers_superior(stack, tap):
    intake = stack["intake"]
    no = await create(intake, subject="快递延误三天还没到")  # logistics: trace 3 s -> redeliver 24 h
    [routed] = await tap.wait_events(of(no, "ticket.routed"))
    assert routed.data["category"] == "logistics"
    [started] = await tap.wait_events(of(no, "sla.started", metric="step"))
    assert (started.data["step"], started.data["limit"]) == ("trace", "3s")
    [warning] = await tap.wait_events(of(no, "ticket.escalated", trigger="step_warning"), timeout=20)
    [breach] = await tap.wait_events(of(no, "ticket.escalated", trigger="step_breached"), timeout=20)
    assert breach.data["reason"] == f"工单{no}已超3秒未完成"
    assert breach.data["to"] == "logistics-lead-zhou" and breach.data["role"] == "lead" and breach.data["step"] == "trace"
    assert warning.data["to"] == "logistics-lead-zhou"
    await cmd(intake, no, "progress", note="已联系快递重新派送", step="redeliver")
    [s2] = await tap.wait_events(of(no, "sla.started", metric="step", step="redeliver"))
    assert s2.data["limit"] == "24h"
    clocks = {c["metric"]: c["state"] for c in (await stack["sla"].client.get(f"/v1/sla/{no}")).json()["clocks"]}
    assert clocks["step:trace"] == "breached" and clocks["step:redeliver"] == "running"
    view = await view_when(intake, no, lambda v: "step:redeliver" in v["sla"])
    assert view["sla"]["step:trace"]["state"] == "breached" and view["sla"]["step:redeliver"]["state"] == "running"


async def test_routing_matches_warranty_entitlement_and_diagnosed_cause(stack, tap):
    intake = stack["intake"]
    fresh = await create(intake, subject="新买的手机屏幕闪烁", product="手机",
                         purchase_date=(date.today() - timedelta(days=2)).isoformat())
    [created] = await tap.wait_events(of(fresh, "ticket.created"))
    assert created.data["warranty"]["entitlement"] == "return"
    [routed] = await tap.wait_events(of(fresh, "ticket.routed"))
    assert (routed.data["rule"], routed.data["category"], routed.data["department"]) == (
        "warranty-return", "return", "logistics")
    old = await create(intake, subject="手机屏幕闪烁", product="手机",
                       purchase_date=(date.today() - timedelta(days=100)).isoformat())
    [routed_old] = await tap.wait_events(of(old, "ticket.routed"))
    assert routed_old.data["rule"] != "warranty-return"  # repair entitlement: the text decides
    wanted = await create(intake, subject="想换个颜色", service_type="exchange")
    [r3] = await tap.wait_events(of(wanted, "ticket.routed"))
    assert r3.data["rule"] == "service-return"
    broken = await create(intake, subject="设备有异响")
    [first] = await tap.wait_events(of(broken, "ticket.routed"))
    assert first.data["department"] == "technical"
    await cmd(intake, broken, "diagnose", result="运输途中摔坏", cause="logistics", sub_item="外壳")
    [moved] = await tap.wait_events(of(broken, "ticket.routed", reason="diagnosed"))
    assert (moved.data["category"], moved.data["department"], moved.data["rule"]) == (
        "logistics", "logistics", "cause-logistics")


async def test_records_commands_need_role_agent(intake):
    no = await create(intake, subject="设备无法启动")
    fields = {"actor": "a", "result": "x", "cause": "hardware"}
    for key, status in (("analyst-secret", 403), ("gw-secret", 403), ("agent-secret", 200), ("nope", 401)):
        r = await intake.client.post(f"/v1/tickets/{no}/diagnose", json=fields, headers={"X-API-Key": key})
        assert r.status_code == status, (key, r.text)
        if status == 403:
            assert "agent" in r.text
