"""customer.erase and the customer export across intake, notification and survey on the real broker
and database: before, the export holds everything; after erasing (AMQP, then HTTP again: idempotent)
no raw value is found in any column of any schema, and the tickets' facts are still there."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import orjson

from shared.customers import customer_key
from shared.settings import Settings
from tests.notification.helpers import wait_rows
from tests.privacy.helpers import _hits, _person, _raw_needles
from tests.survey.conftest import time_travel

async def _wait(pred, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if got := await pred():
            return got
        await asyncio.sleep(0.1)
    raise TimeoutError("condition never held")


async def _customer_history(intake, survey, notification, tap, p) -> tuple[str, str]:  # noqa: ANN001
    body = {"channel": "wechat", "external_id": p["email"],
            "customer": {k: p[k] for k in ("name", "phone", "email", "id")},
            "subject": f"{p['name']}的洗衣机漏水", "description": f"我是{p['name']}，请打 {p['phone']} 或发邮件 {p['email']}",
            "complaint": {"type": "attitude", "involved_staff": ["agent-7"], "demand": f"回电 {p['phone']}"}}
    r = await intake.client.post("/v1/tickets", json=body)
    assert r.status_code == 201, r.text
    no = r.json()["ticket_no"]
    await wait_rows(notification, no, lambda rows: rows and rows[0]["status"] == "sent")
    for action, cmd in (("respond", {"actor": "agent-7", "message": f"{p['name']}您好，已安排上门"}),
                        ("resolve", {"actor": "agent-7", "outcome": "resolved", "solution": "更换进水阀"})):
        r = await intake.client.post(f"/v1/tickets/{no}/{action}", json=cmd)
        assert r.status_code == 200, r.text
    async def scheduled():  # a complaint's survey waits an hour: make it due now
        async with survey.rt.pool.acquire() as conn:
            return await conn.fetchval("SELECT survey_id FROM survey.surveys WHERE ticket_no = $1", no)

    await time_travel(survey, str(await _wait(scheduled)), "send_at")
    [sent] = await tap.wait_events(lambda e: e.subject == no and e.type == "survey.sent", timeout=30)
    async with httpx.AsyncClient(timeout=10) as web:
        answer = {"resolved": False, "speed": 2, "attitude": 1, "overall": 1,
                  "comment": f"我是{p['name']}，电话{p['phone']}，态度太差"}
        r = await web.post(sent.data["url"], json=answer)
        assert r.status_code == 201, r.text
    await tap.wait_events(lambda e: e.subject == no and e.type == "survey.negative")

    async def in_timeline():  # intake's timeline holds the survey's events (with the comment) too
        async with intake.rt.pool.acquire() as conn:
            return await conn.fetchval("SELECT count(*) FROM intake.timeline WHERE ticket_no = $1"
                                       " AND type = 'survey.negative'", no)

    await _wait(in_timeline)
    return no, customer_key(secret=Settings().customer_key_secret, phone=p["phone"])


async def test_export_then_erase_leaves_no_raw_value_in_any_schema(intake, survey, notification, notification_url,
                                                                   tap, publisher):
    p = _person()
    no, key = await _customer_history(intake, survey, notification, tap, p)
    intake.app.state.export_peers = {"notification": notification_url, "survey": survey.base_url}
    try:
        r = await intake.client.get(f"/v1/customers/{key}/export")
    finally:
        intake.app.state.export_peers = None
    assert r.status_code == 200, r.text
    export = r.json()["services"]
    [mine] = export["intake"]["tickets"]
    assert mine["ticket_no"] == no and mine["customer_phone"] == p["phone"] and mine["customer_name"] == p["name"]
    assert {"ticket.created", "ticket.responded", "survey.negative"} <= {e["type"] for e in mine["timeline"]}
    assert export["notification"]["tickets"][0]["ticket_no"] == no
    assert any(d["template"] == "ticket_received" for d in export["notification"]["deliveries"])
    assert export["survey"]["surveys"][0]["comment"].startswith(f"我是{p['name']}")
    assert await _hits(_raw_needles(p)), "the raw values were stored before the erasure"

    # erase over AMQP, then once more over HTTP: the second finds nothing new
    await publisher.publish("helpdesk.commands", "customer.erase", {"customer_key": key, "actor": "dpo"},
                            message_id=f"erase-{uuid.uuid4().hex}")
    [erased] = await tap.wait_events(lambda e: e.type == "customer.erased" and e.data.get("customer_key") == key)
    assert erased.data == {"customer_key": key} and erased.source == "/helpdesk/intake"

    async def erased_everywhere() -> bool:
        async with notification.rt.pool.acquire() as c1, survey.rt.pool.acquire() as c2:
            n = await c1.fetchval("SELECT erased_at FROM notification.tickets WHERE ticket_no = $1", no)
            s = await c2.fetchval("SELECT erased_at FROM survey.tickets WHERE ticket_no = $1", no)
        return n is not None and s is not None

    await _wait(erased_everywhere)
    again = await intake.client.post(f"/v1/customers/{key}/erase", json={"actor": "dpo"})
    assert again.status_code == 200 and again.json()["tickets"] == 1 and again.json()["newly_erased"] == 0
    await tap.wait_events(lambda e: e.type == "customer.erased" and e.data.get("customer_key") == key, count=2)
    await asyncio.sleep(0.5)  # let the second customer.erased be handled too

    assert await _hits([*_raw_needles(p), "态度太差"]) == []  # nor the customer's own words anywhere
    # the facts stay: the ticket, its handling and the survey's scores
    view = (await intake.client.get(f"/v1/tickets/{no}")).json()
    assert view["status"] == "resolved" and view["channel"] == "wechat" and view["handling"]["responses"] == 1
    assert view["customer"]["name"] is None and view["customer"]["phone"] is None
    async with survey.rt.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT overall, resolved, comment FROM survey.surveys WHERE ticket_no = $1", no)
    assert (row["overall"], row["resolved"], row["comment"]) == (1, False, None)
    r = await intake.client.get(f"/v1/customers/{key}/export")
    assert r.json()["services"]["intake"]["tickets"][0]["customer_email"] is None


async def test_erase_and_export_need_admin_and_a_key(intake):
    key = "a" * 64
    r = await intake.client.post(f"/v1/customers/{key}/erase", headers={"X-API-Key": "desk-secret"})
    assert r.status_code == 403 and "admin" in r.text
    r = await intake.client.get("/v1/customers/not-a-key/export")
    assert r.status_code == 422
    r = await intake.client.post(f"/v1/customers/{key}/erase")
    assert r.status_code == 200 and r.json()["tickets"] == 0  # nobody by that key: still announced, idempotent
    r = await intake.client.post("/v1/customers/key", json={"phone": "+86 138-1234-5678"})
    assert r.json()["customer_key"] == customer_key(secret=Settings().customer_key_secret, phone="13812345678")


async def test_malformed_erase_command_is_dead_lettered(intake, publisher, dlq_tap):
    mid = f"erase-bad-{uuid.uuid4().hex}"
    await publisher.publish("helpdesk.commands", "customer.erase", {"customer_key": "13812345678", "actor": "x"},
                            message_id=mid)
    [dead] = await dlq_tap.wait_messages(lambda m: m.message_id == mid)
    assert dead.headers["x-helpdesk-reason"].startswith("customer_key:")
    assert b"13812345678" not in dead.body and orjson.loads(dead.body)["customer_key"] == "138****5678"
