"""Tried as a new user would: the seeds' three sample records (DOMAIN.md "Sample records") entered over
HTTP and worked through to closure — diagnosis, appointment, complaint verification and determination,
the follow-up call — with intake, routing and sla running, and their timelines read back."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from tests.records.conftest import cmd, of, phone, view_when


def line(view: dict) -> str:
    """A readable timeline (printed with ``pytest -s``)."""
    a = view["assignment"]
    out = [f"{view['ticket_no']} {view['subject']}: {view['status']}, {a['category']}/{a['priority']} -> {a['department']}"]
    for e in view["timeline"]:
        d = e["data"]
        what = d.get("metric") or d.get("step") or d.get("cause") or d.get("remedy") or d.get("outcome") or ""
        extra = d.get("step") if d.get("metric") == "step" else ""
        out.append(f"  {e['type']:<28} {e['source']:<18} {what} {extra}".rstrip())
    return "\n".join(out)


def intake_types(view: dict) -> list[str]:
    return [e["type"] for e in sorted((e for e in view["timeline"] if e["source"] == "/helpdesk/intake"),
                                      key=lambda e: e["seq"])]


async def register(intake, **fields) -> str:
    r = await intake.client.post("/v1/tickets", json=fields)
    assert r.status_code == 201, r.text
    return r.json()["ticket_no"]


async def test_sample_001_device_does_not_start(stack, tap):
    intake = stack["intake"]
    no = await register(intake, channel="phone", customer={"name": "A公司/王先生", "phone": phone()},
                        subject="设备无法启动", description="早上开机无反应，指示灯不亮", product="工控主机",
                        product_model="IPC-610", purchase_date=(date.today() - timedelta(days=200)).isoformat(),
                        invoice_no="INV-2023-0917", service_type="repair",
                        expected_by=(datetime.now(UTC) + timedelta(hours=6)).isoformat())
    [created] = await tap.wait_events(of(no, "ticket.created"))
    assert created.data["warranty"]["entitlement"] == "repair" and created.data["customer_type"] == "new"
    [routed] = await tap.wait_events(of(no, "ticket.routed"))
    assert (routed.data["category"], routed.data["priority"]) == ("fault", "P1")
    await cmd(intake, no, "respond", message="工程师已接单，先远程指导重启")
    await cmd(intake, no, "progress", note="远程重启指导，判断电源适配器故障", step="remote_test")
    await cmd(intake, no, "diagnose", result="电源适配器输出电压为0", cause="hardware", sub_item="power adapter",
              responsibility="natural_wear")
    await cmd(intake, no, "schedule", appointment_at=(datetime.now(UTC) + timedelta(hours=2)).isoformat(),
              place="苏州市工业园区星湖街328号A栋", note="携带备用适配器")
    await cmd(intake, no, "progress", note="上门更换电源适配器", step="repair")
    await cmd(intake, no, "resolve", outcome="resolved", solution="远程重启指导，上门更换电源适配器 PA-65W")
    await cmd(intake, no, "revisit", outcome="设备运行正常，客户满意", satisfied=True)
    await cmd(intake, no, "close", reason="回访满意，归档")
    view = await view_when(intake, no, lambda v: "step:repair" in v["sla"] and v["sla"]["step:repair"]["state"]
                           == "met" and v["sla"].get("resolution", {}).get("state") == "met")
    print("\n" + line(view))
    assert intake_types(view) == ["ticket.created", "ticket.responded", "ticket.progressed", "ticket.diagnosed",
                                  "ticket.scheduled", "ticket.progressed", "ticket.resolved", "ticket.revisited",
                                  "ticket.closed"]
    assert view["status"] == "closed" and view["diagnosis"]["sub_item"] == "power adapter"
    assert view["appointment"]["place"].endswith("****") and "星湖街" not in str(view)
    assert view["sla"]["step:respond"]["state"] == "met" and view["sla"]["step:remote_test"]["state"] == "met"
    resolution = next(e for e in view["timeline"] if e["type"] == "sla.started" and e["data"]["metric"] == "resolution")
    assert resolution["data"]["target"] in ("policy", "expected_by")
    resolved = next(e for e in view["timeline"] if e["type"] == "ticket.resolved")
    assert resolved["data"]["cause"] == "hardware" and resolved["data"]["sub_item"] == "power adapter"


async def test_sample_002_product_usage_question(stack, tap):
    intake = stack["intake"]
    no = await register(intake, channel="chat", customer={"name": "李女士", "email": "li.na@example.com"},
                        subject="产品使用疑问", description="请问如何设置定时功能？", product="智能电饭煲",
                        service_type="consult")
    [routed] = await tap.wait_events(of(no, "ticket.routed"))
    assert routed.data["category"] == "consultation"
    await cmd(intake, no, "respond", message="您好，这就为您发送视频教程")
    await cmd(intake, no, "resolve", outcome="resolved", solution="发送视频教程并电话指导设置定时功能")
    await cmd(intake, no, "revisit", outcome="客户会用了，评价一般", satisfied=False)
    await cmd(intake, no, "close")
    view = await view_when(intake, no, lambda v: v["sla"].get("resolution", {}).get("state") == "met")
    print("\n" + line(view))
    assert intake_types(view) == ["ticket.created", "ticket.responded", "ticket.resolved", "ticket.revisited",
                                  "ticket.closed"]
    assert view["revisit"]["satisfied"] is False and view["warranty"] is None  # no purchase date given
    assert "revisit" not in view["sla"]  # a consultation owes no revisit under the policy
    assert "li.na@example.com" not in str(view["timeline"])


async def test_sample_003_damaged_goods_complaint(stack, tap):
    intake = stack["intake"]
    no = await register(intake, channel="phone", customer={"name": "某企业", "phone": phone(), "tier": "vip"},
                        subject="货物破损", description="收到的货物外箱压坏，产品外壳开裂，要求换货",
                        product="空调", product_model="KFR-35GW", invoice_no="INV-2023-1001",
                        purchase_date=(date.today() - timedelta(days=3)).isoformat(), service_type="exchange",
                        complaint={"type": "quality", "demand": "换货并给予补偿"})
    [created] = await tap.wait_events(of(no, "ticket.created"))
    assert created.data["warranty"]["entitlement"] == "return"  # 3 days after purchase: 三包 art. 9
    await cmd(intake, no, "respond", message="非常抱歉，我们马上核实")
    r = await intake.client.post(f"/v1/tickets/{no}/resolve",
                                 json={"actor": "agent-7", "outcome": "resolved", "solution": "换货"})
    assert r.status_code == 409 and "responsibility" in r.text  # the complaint rule
    await cmd(intake, no, "verify", method="records", findings="签收照片与物流记录显示运输途中挤压")
    await cmd(intake, no, "diagnose", result="外壳受挤压开裂，功能正常", cause="logistics", sub_item="外壳",
              responsibility="human_damage")
    await tap.wait_events(of(no, "ticket.routed", reason="diagnosed"))
    await cmd(intake, no, "determine", responsibility="third_party", department="物流承运商", remedy="coupon",
              amount=50, customer_accepted=True)
    await cmd(intake, no, "schedule", appointment_at=(datetime.now(UTC) + timedelta(hours=20)).isoformat(),
              place="杭州市余杭区文一西路969号", note="上门取件并送新机")
    await cmd(intake, no, "resolve", outcome="resolved", solution="上门取件换货，赠送50元优惠券")
    await tap.wait_events(of(no, "sla.started", metric="revisit"))
    await cmd(intake, no, "revisit", outcome="新机已安装，客户满意", satisfied=True)
    await tap.wait_events(of(no, "sla.met", metric="revisit"))
    await cmd(intake, no, "close")
    view = await view_when(intake, no, lambda v: v["sla"].get("revisit", {}).get("state") == "met")
    print("\n" + line(view))
    assert intake_types(view) == ["ticket.created", "ticket.responded", "ticket.verified", "ticket.diagnosed",
                                  "ticket.determined", "ticket.scheduled", "ticket.resolved", "ticket.revisited",
                                  "ticket.closed"]
    assert view["determination"] == {**view["determination"], "responsibility": "third_party", "remedy": "coupon",
                                     "amount": 50.0, "customer_accepted": True}
    assert view["assignment"]["department"] == "logistics"  # moved there by the diagnosis' cause
    assert view["verification"]["method"] == "records" and view["status"] == "closed"
