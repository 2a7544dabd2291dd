"""Customers hear of their tickets through the real intake, SMS gateway and SMTP server."""

from __future__ import annotations

import asyncio
import time

import orjson
from prometheus_client import REGISTRY

from tests.notification.helpers import create_ticket, event, phone, publish, rows, wait_rows


def sent(e, no, template=None):  # noqa: ANN001, ANN201
    return e.type == "notification.sent" and e.subject == no and (template is None or e.data["template"] == template)


async def test_ticket_received_by_sms_in_chinese_with_number(notification, intake, peers, tap):
    number = phone()
    no = await create_ticket(intake, phone=number, email="lilei@example.com")
    [e] = await tap.wait_events(lambda e: sent(e, no))
    msg = await peers.wait(lambda: [m for m in peers.sms if m["ticket_no"] == no])
    assert msg[0]["to"] == number  # the gateway gets the real number, from intake
    assert f"工单号 {no}" in msg[0]["text"] and "李雷您好" in msg[0]["text"]
    assert e.source == "/helpdesk/notification"
    assert e.data == {**e.data, "channel": "sms", "template": "ticket_received", "attempt": 1,
                      "recipient": number[:3] + "****" + number[-4:]}
    raw = next(m for m in tap.messages if m.message_id == e.id)
    assert number.encode() not in raw.body and b"lilei@" not in raw.body
    [row] = await rows(notification, no)
    assert row["status"] == "sent" and row["recipient"] == "customer" and row["channel"] == "sms"
    assert number not in orjson.dumps(row, default=str).decode()  # no contact details in the schema


async def test_english_customer_by_email_over_smtp(notification, intake, peers, tap):
    no = await create_ticket(intake, email="jane.doe@example.com", language="en", name="Jane")
    await tap.wait_events(lambda e: sent(e, no))
    [mail] = await peers.wait(lambda: [m for m in peers.mails if m["X-Helpdesk-Ticket"] == no])
    assert mail["To"] == "jane.doe@example.com" and mail["From"] == "support@helpdesk.test"
    assert mail["Subject"] == f"[Support] Ticket {no} received"
    body = mail.get_content()
    assert "Hello Jane" in body and f"Your ticket number is {no}" in body
    [e] = tap.events(lambda e: sent(e, no))
    assert e.data["channel"] == "email" and e.data["recipient"] == "j***@example.com"


async def test_lifecycle_messages_follow_the_rules(notification, intake, peers, tap):
    number = phone()
    no = await create_ticket(intake, phone=number)
    await tap.wait_events(lambda e: sent(e, no))
    for action, body in [("respond", {"message": "工程师将在今天下午联系您"}), ("respond", {"message": "again"}),
                         ("progress", {"note": "内部备注", "visible_to_customer": False}),
                         ("progress", {"note": "备件已寄出", "visible_to_customer": True}),
                         ("resolve", {"outcome": "resolved", "solution": "更换电源模块 PWR-01"})]:
        r = await intake.client.post(f"/v1/tickets/{no}/{action}", json={"actor": "agent-7", **body})
        assert r.status_code == 200, r.text
    def texts_now() -> list[str]:  # a survey service running in the same suite may add an invitation
        return [m["text"] for m in peers.sms if m["ticket_no"] == no and "评价" not in m["text"]]

    texts = await peers.wait(lambda: texts_now() if len(texts_now()) >= 4 else None)
    # (events are consumed concurrently, so the order of planning is not asserted here)
    assert texts[0].startswith("【售后服务】李雷您好")
    assert sum("已有专人处理：工程师将在今天下午联系您" in t for t in texts) == 1
    assert sum("最新进展：备件已寄出" in t for t in texts) == 1
    assert sum("已处理完毕：更换电源模块 PWR-01" in t for t in texts) == 1
    await asyncio.sleep(0.5)  # nothing more comes: the second reply and the internal note are not sent
    assert len(texts_now()) == 4
    templates = [r["template"] for r in await rows(notification, no) if r["template"] != "survey_invite"]
    assert sorted(templates) == ["first_response", "progress", "resolved", "ticket_received"]


async def test_survey_invitation_carries_the_url(notification, intake, peers, tap, publisher):
    no = await create_ticket(intake, email="w.wang@example.com")
    await tap.wait_events(lambda e: sent(e, no))
    url = f"http://127.0.0.1:8005/v1/surveys/s-{no}"
    await publish(publisher, event("survey.sent", no, source="survey", survey_id=f"s-{no}", url=url))
    await tap.wait_events(lambda e: sent(e, no, "survey_invite"))
    mails = await peers.wait(lambda: [m for m in peers.mails if m["X-Helpdesk-Ticket"] == no and "评价" in m["Subject"]])
    assert url in mails[0].get_content()


async def test_gateway_failing_twice_then_succeeding_is_retried(notification, intake, peers, tap):
    number = phone()
    peers.sms_plan[number] = [503, 502]
    no = await create_ticket(intake, phone=number)
    [e] = await tap.wait_events(lambda e: sent(e, no))
    assert e.data["attempt"] == 3 and peers.sms_calls[number] == 3
    async with notification.rt.pool.acquire() as conn:
        log = await conn.fetch("SELECT a.attempt, a.outcome, a.error, a.at FROM notification.attempts a"
                               " JOIN notification.deliveries d ON d.id = a.delivery_id WHERE d.ticket_no = $1"
                               " ORDER BY a.attempt", no)
    assert [(r["attempt"], r["outcome"]) for r in log] == [(1, "retry"), (2, "retry"), (3, "sent")]
    assert log[0]["error"].startswith("HTTP 503")
    assert log[0]["at"] < log[1]["at"] < log[2]["at"]
    assert len([m for m in peers.sms if m["to"] == number]) == 1


async def test_always_failing_gateway_gives_failed_event_and_dead_letter(notification, intake, peers, tap, dlq_tap):
    number = phone()
    peers.sms_always_fail.add(number)
    no = await create_ticket(intake, phone=number)
    [e] = await tap.wait_events(lambda e: e.type == "notification.failed" and e.subject == no)
    assert e.data["attempt"] == 3 and e.data["channel"] == "sms" and e.data["template"] == "ticket_received"
    assert e.data["recipient"] == number[:3] + "****" + number[-4:] and "HTTP 500" in e.data["error"]
    [dead] = await dlq_tap.wait_messages(lambda m: b'"ticket_no":"' + no.encode() + b'"' in m.body)
    assert dead.routing_key == "ticket.created"
    assert dead.headers["x-helpdesk-reason"].startswith("notification failed after 3 attempt(s): HTTP 500")
    assert dead.headers["x-helpdesk-queue"] == "notification.deliveries"
    assert dead.headers["x-original-routing-key"] == "ticket.created"
    assert number.encode() not in dead.body
    assert peers.sms_calls[number] == 3
    # the row is marked dead-lettered once the broker confirmed the dead letter
    [row] = await wait_rows(notification, no, lambda rs: rs[0]["dead_lettered_at"] is not None)
    assert row["status"] == "failed" and row["attempts"] == 3
    assert not tap.events(lambda e: sent(e, no))


def consumed() -> float:
    return REGISTRY.get_sample_value("helpdesk_messages_consumed_total", {
        "service": "notification", "queue": "notification.events", "outcome": "ok"}) or 0.0


async def until(cond, timeout: float = 15.0) -> None:  # noqa: ANN001
    async def poll() -> None:
        while not await cond():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), timeout)


async def test_redelivered_event_sends_no_second_message(notification, intake, peers, tap, publisher):
    no = await create_ticket(intake, email="dup@example.com")
    await tap.wait_events(lambda e: sent(e, no))
    resolved = event("ticket.resolved", no, source="intake", outcome="resolved", solution="远程指导重启后恢复",
                     actor="agent-1", at="2026-11-23T08:00:00+00:00", first_contact=True)
    before = consumed()
    for _ in range(3):
        await publish(publisher, resolved)

    async def all_consumed() -> bool:
        return consumed() >= before + 3

    await until(all_consumed)
    await tap.wait_events(lambda e: sent(e, no, "resolved"))
    # Even with the inbox row gone (e.g. pruned), the (event, recipient, channel) key holds.
    async with notification.rt.pool.acquire() as conn:
        await conn.execute("DELETE FROM notification.inbox WHERE message_id = $1", resolved.id)
    await publish(publisher, resolved)

    async def reclaimed() -> bool:
        async with notification.rt.pool.acquire() as conn:
            return bool(await conn.fetchval("SELECT 1 FROM notification.inbox WHERE message_id = $1", resolved.id))

    await until(reclaimed)
    await asyncio.sleep(0.3)  # give a (wrong) second send the time it would need
    mails = [m for m in peers.mails if m["X-Helpdesk-Ticket"] == no]
    assert len([m for m in mails if "处理结果" in m["Subject"]]) == 1
    assert len(tap.events(lambda e: sent(e, no, "resolved"))) == 1
    templates = [r["template"] for r in await rows(notification, no)]
    assert [t for t in templates if t != "survey_invite"] == ["ticket_received", "resolved"]


async def test_a_failed_delivery_left_undead_lettered_is_swept_up_but_not_on_every_pass(
        notification, intake, peers, tap, dlq_tap):
    """A final failure dead-letters itself; one that could not (broker down, process killed in between) is
    found by the worker's sweep, which runs on the first pass and then once a minute, not every pass."""
    number = phone()
    peers.sms_always_fail.add(number)
    no = await create_ticket(intake, phone=number)
    [row] = await wait_rows(notification, no, lambda rs: bool(rs) and rs[0]["dead_lettered_at"] is not None)
    pool, worker = notification.rt.pool, notification.app.state.worker
    worker._next_sweep = time.monotonic() + 3600  # swept a moment ago
    await pool.execute("UPDATE notification.deliveries SET dead_lettered_at = NULL WHERE id = $1", row["id"])
    await worker.pass_once()
    assert await pool.fetchval("SELECT dead_lettered_at FROM notification.deliveries WHERE id = $1", row["id"]) is None
    worker._next_sweep = 0.0  # the minute is up
    await worker.pass_once()
    assert await pool.fetchval("SELECT dead_lettered_at FROM notification.deliveries WHERE id = $1", row["id"])
    assert worker._next_sweep > time.monotonic() + 30  # and the next one is a while off
    dead = await dlq_tap.wait_messages(lambda m: b'"ticket_no":"' + no.encode() + b'"' in m.body)
    assert len(dead) >= 1
