"""Quiet hours hold proactive messages only — on the real broker and database, with the shipped rules
file and the delivery worker's clock fixed at 04:03 Asia/Shanghai (inside 22:00–08:00): the
acknowledgement and an agent's replies go out at once, a progress note waits until 08:00."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from tests.customer.conftest import command, new_ticket, until

TZ = ZoneInfo("Asia/Shanghai")


async def _held(notification, no: str, template: str):  # noqa: ANN001, ANN202
    async with notification.running.rt.pool.acquire() as conn:
        return await conn.fetchrow(
            "SELECT held, next_attempt_at, status FROM notification.deliveries"
            " WHERE ticket_no = $1 AND template = $2 AND recipient = 'customer'", no, template)


async def test_told_at_once_at_0403_progress_waits_until_0800(public, notification, tap):
    intake = public.intake
    day = datetime.now(TZ).date() - timedelta(days=1)  # a past night: every real due time stays due after
    notification.set_clock(datetime.combine(day, time(4, 3), tzinfo=TZ))
    try:
        # a usage question (P3 when routed): "无法启动" would make it an urgent fault, which quiet hours let through
        no = await new_ticket(intake, subject="产品使用疑问", description="如何设置定时开机？")
        ack = await notification.sent.wait(no, "ticket_received")
        assert no in ack["text"] and "/t/" in ack["text"]
        await command(intake, no, "respond", message="您好，我是工程师王工，正在查看您的问题")
        first = await notification.sent.wait(no, "first_response")
        assert "正在查看您的问题" in first["text"]
        await command(intake, no, "respond", message="请问打印机型号是？")
        await notification.sent.wait(no, "reply")
        await command(intake, no, "progress", note="备件已发出", visible_to_customer=True)
        try:
            held = await until(lambda: _pending_held(notification, no), "the progress note held for quiet hours")
        except AssertionError:
            raise AssertionError(f"the progress note was not held: {await _deliveries(notification, no)}") from None
        assert held["next_attempt_at"] == datetime.combine(day, time(8, 0), tzinfo=TZ)
        assert notification.sent.of(no, "progress") == []
        sent = await tap.wait_events(lambda e: e.subject == no and e.type == "notification.sent"
                                     and e.data["recipient"] == "139****5678", count=3)
        assert {e.data["template"] for e in sent} == {"ticket_received", "first_response", "reply"}

        notification.set_clock(datetime.combine(day, time(8, 0, 1), tzinfo=TZ))  # the quiet hours end
        progress = await notification.sent.wait(no, "progress")
        assert "备件已发出" in progress["text"]
        await until(lambda: _status_is(notification, no, "sent"), "the held note recorded as sent")
    finally:
        notification.set_clock(None)


async def _deliveries(notification, no: str) -> list[dict]:  # noqa: ANN001
    async with notification.running.rt.pool.acquire() as conn:
        rows = await conn.fetch("SELECT template, recipient, urgent, quiet, held, status, next_attempt_at"
                                " FROM notification.deliveries WHERE ticket_no = $1 ORDER BY id", no)
    return [dict(r) for r in rows]


async def _status_is(notification, no: str, status: str) -> bool:  # noqa: ANN001
    return (await _held(notification, no, "progress"))["status"] == status


async def _pending_held(notification, no: str):  # noqa: ANN001, ANN202
    row = await _held(notification, no, "progress")
    return row if row and row["held"] == "quiet_hours" else None
