"""Staff hear of assignments, SLA trouble, escalations and unhappy customers: signed webhooks, a group
robot, email; plus rate limits, quiet hours, bad events, the delivery log and metrics."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from tests.notification.conftest import TZ
from tests.notification.helpers import create_ticket, event, phone, publish, wait_rows


def about(e, no, type_="notification.sent"):  # noqa: ANN001, ANN201
    return e.type == type_ and e.subject == no


def routed(no: str, assignee: str | None) -> object:
    return event("ticket.routed", no, category="fault", priority="P2", department="technical", assignee=assignee,
                 rule="fault-keywords")


async def test_assignee_hears_by_signed_webhook(notification, intake, peers, tap, publisher):
    no = await create_ticket(intake)
    await publish(publisher, routed(no, "agent-hook"))
    [e] = await tap.wait_events(lambda e: about(e, no) and e.data["channel"] == "webhook")
    assert e.data["recipient"] == "agent-hook" and e.data["template"] == "assigned"
    [hook] = await peers.wait(lambda: [w for w in peers.webhooks if w["body"]["ticket_no"] == no])
    body = hook["body"]  # the receiver verified the signature before keeping it
    assert body["event"] == "ticket.routed" and body["template"] == "assigned" and body["language"] == "zh-CN"
    assert body["text"] == f"新工单 {no} 已分配给您（P2，fault），请及时响应。"
    assert hook["headers"]["x-helpdesk-signature"].startswith("sha256=")
    assert hook["headers"]["x-helpdesk-delivery"] == body["id"]


async def test_webhook_signed_with_the_wrong_key_is_refused_and_fails_at_once(
        notification, intake, peers, tap, publisher, dlq_tap):
    no = await create_ticket(intake)
    rejected = peers.webhook_rejected
    await publish(publisher, routed(no, "agent-badkey"))
    [e] = await tap.wait_events(lambda e: about(e, no, "notification.failed"))
    assert e.data["attempt"] == 1 and "HTTP 401" in e.data["error"]  # a 4xx is not retried
    assert peers.webhook_rejected == rejected + 1
    [dead] = await dlq_tap.wait_messages(lambda m: no.encode() in m.body)
    assert dead.routing_key == "ticket.routed" and "HTTP 401" in dead.headers["x-helpdesk-reason"]


async def test_supervisor_and_manager_hear_escalations_breaches_and_negative_surveys(
        notification, intake, peers, tap, publisher):
    no = await create_ticket(intake)
    due = "2026-11-23T02:00:00+00:00"
    for e in (event("ticket.escalated", no, level=1, to="supervisor", reason="跨部门协调"),
              event("ticket.escalated", no, level=2, to="tech-director", reason="needs a field engineer"),
              event("sla.breached", no, source="sla", metric="resolution", due_at=due, breached_at=due),
              event("survey.negative", no, source="survey", survey_id="s1", reason="overall: dissatisfied")):
        await publish(publisher, e)
    robot = await peers.wait(lambda: [r["text"]["content"] for r in peers.robot if no in r["text"]["content"]]
                             if sum(no in r["text"]["content"] for r in peers.robot) >= 2 else None)
    assert any(f"工单 {no} 已升级（第 1 级，至 supervisor）：跨部门协调" in t for t in robot)
    assert any(f"超时告警：工单 {no} 已超过解决时限（截止 2026-11-23 10:00）" in t for t in robot)
    mails = await peers.wait(lambda: [m for m in peers.mails if m["X-Helpdesk-Ticket"] == no
                                      and m["To"] == "manager@helpdesk.test"]
                             if sum(m["To"] == "manager@helpdesk.test" and m["X-Helpdesk-Ticket"] == no
                                    for m in peers.mails) >= 2 else None)
    subjects = sorted(m["Subject"] for m in mails)  # the manager reads English (staff config)
    assert subjects == [f"Dissatisfied customer: ticket {no}", f"Ticket escalated: {no}"]
    negative = next(m for m in mails if m["Subject"].startswith("Dissatisfied"))
    assert "call back within 1 hour" in negative.get_content()


async def test_sla_warning_goes_to_the_assignee_else_the_supervisor(notification, intake, peers, tap, publisher):
    no = await create_ticket(intake)
    due = (datetime.now(UTC) + timedelta(minutes=12)).isoformat()
    await publish(publisher, event("sla.warning", no, source="sla", metric="first_response", due_at=due,
                                   remaining_s=720.0))
    [e] = await tap.wait_events(lambda e: about(e, no) and e.data["template"] == "sla_warning")
    assert e.data["recipient"] == "supervisor" and e.data["channel"] == "wecom"
    await publish(publisher, routed(no, "agent-hook"))
    await tap.wait_events(lambda e: about(e, no) and e.data["template"] == "assigned")
    await publish(publisher, event("sla.warning", no, source="sla", metric="resolution", due_at=due,
                                   remaining_s=600.0))
    hooks = await peers.wait(lambda: [w["body"] for w in peers.webhooks
                                      if w["body"]["ticket_no"] == no and w["body"]["template"] == "sla_warning"])
    assert "解决时限" in hooks[0]["text"] and "剩余约 10 分钟" in hooks[0]["text"]


async def test_rate_limit_holds_messages_beyond_the_recipients_limit(notification, intake, peers, tap, publisher):
    no = await create_ticket(intake)
    await publish(publisher, routed(no, "agent-busy"))  # agent-busy: 2 messages per 600 s
    await tap.wait_events(lambda e: about(e, no) and e.data["recipient"] == "agent-busy")
    due = (datetime.now(UTC) + timedelta(minutes=30)).isoformat()
    for i in range(3):
        await publish(publisher, event("sla.warning", no, source="sla", metric="resolution", due_at=due,
                                       remaining_s=1800.0 - i))
    staff = await wait_rows(notification, no, lambda rs: sum(
        r["recipient"] == "staff:agent-busy" and (r["status"] == "sent" or r["held"] == "rate_limit")
        for r in rs) == 4, recipient="staff:agent-busy")
    busy = [r for r in staff if r["recipient"] == "staff:agent-busy"]
    sent = [r for r in busy if r["status"] == "sent"]
    held = [r for r in busy if r["held"] == "rate_limit"]
    assert len(sent) == 2 and len(held) == 2
    first = min(r["last_attempt_at"] for r in sent)
    assert all(r["next_attempt_at"] == first + timedelta(seconds=600) and r["attempts"] == 0 for r in held)
    assert len([r for r in peers.robot if no in r["text"]["content"]]) == 2


async def test_quiet_hours_hold_non_urgent_customer_messages_until_the_end(notification, intake, peers, tap):
    worker = notification.app.state.worker
    cfg = worker.cfg.quiet_hours
    real = datetime.now(TZ)
    start = datetime.combine(real.date(), cfg.start, tzinfo=TZ)
    if start < real:
        start += timedelta(days=1)
    inside = start + timedelta(hours=1)
    worker.clock = lambda: datetime.now(UTC) + (inside - real)
    try:
        calm, urgent = phone(), phone()
        no_calm = await create_ticket(intake, phone=calm)
        no_urgent = await create_ticket(intake, phone=urgent, urgency="urgent")
        await tap.wait_events(lambda e: about(e, no_urgent))  # urgent: sent during quiet hours
        [held] = await wait_rows(notification, no_calm, lambda rs: rs and rs[0]["held"] == "quiet_hours")
        end = datetime.combine((start + timedelta(hours=4)).date(), cfg.end, tzinfo=TZ)
        assert held["status"] == "pending" and held["attempts"] == 0 and held["next_attempt_at"] == end
        await asyncio.sleep(0.3)
        assert not [m for m in peers.sms if m["to"] == calm]
        worker.clock = lambda: datetime.now(UTC) + (end + timedelta(seconds=1) - real)
        worker.wake()
        [e] = await tap.wait_events(lambda e: about(e, no_calm))
        assert e.data["attempt"] == 1
        assert [m["to"] for m in peers.sms if m["ticket_no"] == no_calm] == [calm]
    finally:
        worker.clock = lambda: datetime.now(UTC)


async def test_malformed_event_is_dead_lettered_with_its_reason(notification, publisher, dlq_tap):
    bad = event("ticket.routed", "20261123999999", category="fault")  # no priority, assignee, rule
    await publish(publisher, bad)
    # intake's timeline refuses it too (a ticket it never registered), in its own time: notification's is the one
    [dead] = await dlq_tap.wait_messages(
        lambda m: m.message_id == bad.id and (m.headers or {}).get("x-helpdesk-queue") == "notification.events")
    assert "priority: Field required" in dead.headers["x-helpdesk-reason"]


async def test_delivery_log_api_metrics_and_docs(notification, intake, tap):
    number = phone()
    no = await create_ticket(intake, phone=number)
    await tap.wait_events(lambda e: about(e, no))
    r = await notification.client.get("/v1/deliveries", params={"ticket_no": no}, headers={"X-API-Key": "nope"})
    assert r.status_code == 401
    r = await notification.client.get("/v1/deliveries", params={"ticket_no": no})
    assert r.status_code == 200
    [d] = [d for d in r.json()["deliveries"] if d["recipient"] == "customer"]
    assert d["status"] == "sent" and d["recipient_masked"] == number[:3] + "****" + number[-4:]
    assert [a["outcome"] for a in d["log"]] == ["sent"]
    assert number not in r.text
    text = (await notification.client.get("/metrics")).text
    assert 'helpdesk_notifications_total{channel="sms",outcome="sent"}' in text
    assert 'helpdesk_notifications_total{channel="sms",outcome="failed"}' in text
    assert 'helpdesk_notification_deliveries{channel="sms",status="sent"}' in text
    health = await notification.client.get("/healthz")
    assert health.status_code == 200 and health.json()["checks"] == {"database": True, "broker": True}
    doc = (await notification.client.get("/asyncapi.json")).json()
    assert any("notification.events" in name for name in doc["channels"])
    assert "/v1/deliveries" in (await notification.client.get("/openapi.json")).json()["paths"]


@pytest.mark.parametrize("status", ["bogus"])
async def test_delivery_log_refuses_bad_filters(notification, status):
    r = await notification.client.get("/v1/deliveries", params={"status": status})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "status"


async def test_unlisted_assignee_gets_the_log_channel(notification, intake, tap, publisher, caplog):
    no = await create_ticket(intake)
    with caplog.at_level("INFO", logger="services.notification.channels"):
        await publish(publisher, routed(no, "agent-nobody-knows"))
        [e] = await tap.wait_events(lambda e: about(e, no) and e.data["channel"] == "log")
    assert e.data["recipient"] == "agent-nobody-knows" and e.data["template"] == "assigned"
    [record] = [r for r in caplog.records if getattr(r, "ticket_no", None) == no]
    assert record.text == f"新工单 {no} 已分配给您（P2，fault），请及时响应。"
