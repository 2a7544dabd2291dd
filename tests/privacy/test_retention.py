"""Retention with a clock: HELPDESK_CONTACT_RETENTION_DAYS (365) after a ticket closed, its raw
contacts are purged from intake and notification, its free text keeps only the masked form; a
survey comment keeps its masked form after the same time."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

from services.intake import privacy as intake_privacy
from services.notification import privacy as notification_privacy
from services.survey import privacy as survey_privacy
from shared.settings import Settings
from tests.privacy.helpers import _hits, _person, _raw_needles

CLOSED = datetime(2001, 3, 1, 12, 0, tzinfo=UTC)


async def _until(pred, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if got := await pred():
            return got
        await asyncio.sleep(0.1)
    raise TimeoutError("condition never held")


async def test_contacts_purged_a_year_after_close_and_not_before(intake, notification, survey):
    p = _person()
    r = await intake.client.post("/v1/tickets", json={
        "channel": "app", "external_id": f"app-{uuid.uuid4().hex}",
        "customer": {k: p[k] for k in ("name", "phone", "email", "id")},
        "subject": "空调不制冷", "description": f"{p['name']}说：回电 {p['phone']}，邮件 {p['email']}"})
    assert r.status_code == 201, r.text
    no = r.json()["ticket_no"]
    for action, cmd in (("respond", {"actor": "agent-7", "message": f"{p['name']}您好"}),
                        ("close", {"actor": "sup-1", "reason": "客户确认"})):
        assert (await intake.client.post(f"/v1/tickets/{no}/{action}", json=cmd)).status_code == 200

    async def notification_knows_closed():
        async with notification.rt.pool.acquire() as conn:
            return await conn.fetchval("SELECT closed_at FROM notification.tickets WHERE ticket_no = $1", no)

    await _until(notification_knows_closed)
    async with intake.rt.pool.acquire() as conn:  # the clock: this ticket closed in 2001
        await conn.execute("UPDATE intake.tickets SET closed_at = $2 WHERE ticket_no = $1", no, CLOSED)
    async with notification.rt.pool.acquire() as conn:
        await conn.execute("UPDATE notification.tickets SET closed_at = $2 WHERE ticket_no = $1", no, CLOSED)
    days = Settings().contact_retention_days
    assert days == 365

    before = CLOSED + timedelta(days=364)
    assert await intake_privacy.daily(intake.rt, now=before) == 0
    assert await notification_privacy.purge_expired(notification.rt, now=before, retention_days=days) == 0
    async with intake.rt.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM intake.tickets WHERE ticket_no = $1", no)
    assert row["customer_phone"] == p["phone"] and row["contact_purged_at"] is None

    after = CLOSED + timedelta(days=366)
    assert await intake_privacy.daily(intake.rt, now=after) == 1
    assert await notification_privacy.purge_expired(notification.rt, now=after, retention_days=days) == 1
    async with intake.rt.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM intake.tickets WHERE ticket_no = $1", no)
    assert row["customer_phone"] is None and row["customer_email"] is None and row["customer_id"] is None
    assert row["customer_name"] == p["name"][0] + "*" and row["contact_purged_at"] == after
    assert row["description"].startswith(f"{p['name'][0]}*说：回电 136****") and "***@Example.com" in row["description"]
    assert row["status"] == "closed" and row["responses"] == 1  # the facts stay
    assert await _hits(_raw_needles(p)) == []
    # a second run finds nothing more to do
    assert await intake_privacy.daily(intake.rt, now=after) == 0
    view = (await intake.client.get(f"/v1/tickets/{no}")).json()
    assert view["timeline"][0]["data"]["customer"]["name"] == p["name"][0] + "*"


async def test_survey_comment_keeps_only_its_masked_form_after_retention(survey):
    sid = uuid.uuid4()
    async with survey.rt.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO survey.surveys (survey_id, ticket_no, token, status, language, complaint, resolution_event,"
            " resolution_seq, resolved_at, send_at, answered_at, overall, comment)"
            " VALUES ($1, '20010301000001', $2, 'answered', 'zh-CN', false, $3, 1, $4, $4, $4, 2, $5)",
            sid, uuid.uuid4().hex, str(uuid.uuid4()), CLOSED, "请打13612345678，或 lilei@example.com")
    now = CLOSED + timedelta(days=366)
    assert await survey_privacy.purge_expired(survey.rt, now=now, retention_days=365) >= 1
    async with survey.rt.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT comment, overall FROM survey.surveys WHERE survey_id = $1", sid)
    assert row["comment"] == "请打136****5678，或 l***@example.com" and row["overall"] == 2
