"""Intake over HTTP and AMQP: tickets in, ``ticket.created`` out, masked, numbered, idempotent."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import asyncpg

from tests.conftest import API_KEY


def ticket(**over):
    body = {
        "channel": "phone",
        "external_id": f"call-{uuid.uuid4().hex}",
        "customer": {"name": "李雷", "phone": "13812345678", "email": "lilei@example.com", "tier": "vip"},
        "subject": "设备无法启动",
        "description": "客户报告设备宕机，生产停止。回拨 13812345678",
        "urgency": "urgent",
    }
    body.update(over)
    return body


def today() -> str:
    return datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y%m%d")


async def test_http_create_publishes_masked_ticket_created(intake, tap):
    r = await intake.client.post("/v1/tickets", json=ticket())
    assert r.status_code == 201, r.text
    no = r.json()["ticket_no"]
    assert re.fullmatch(today() + r"\d{6}", no)
    [event] = await tap.wait_events(lambda e: e.subject == no and e.type == "ticket.created")
    assert event.source == "/helpdesk/intake" and event.specversion == "1.0"
    assert event.data["ticket_no"] == no and event.data["seq"] == 1
    assert event.data["customer"]["phone"] == "138****5678"
    assert event.data["customer"]["email"] == "l***@example.com"
    raw = tap.messages[-1]
    assert raw.content_type == "application/cloudevents+json" and raw.message_id == event.id
    assert b"13812345678" not in raw.body and b"lilei@" not in raw.body
    assert raw.delivery_mode == 2  # persistent


async def test_amqp_create_and_caller_recorded(intake, tap, publisher):
    ext = f"chat-{uuid.uuid4().hex}"
    await publisher.publish("helpdesk.intake", "intake.chat", ticket(channel="chat", external_id=ext))
    [event] = await tap.wait_events(lambda e: e.type == "ticket.created" and e.data.get("external_id") == ext)
    assert event.data["channel"] == "chat" and event.data["caller"] == "amqp:chat"
    r = await intake.client.get(f"/v1/tickets/{event.subject}")
    assert r.status_code == 200 and r.json()["status"] == "new"
    assert r.json()["customer"]["phone"] == "138****5678"


async def test_same_external_id_makes_one_ticket_even_concurrently(intake, tap, publisher):
    body = ticket()
    http = [intake.client.post("/v1/tickets", json=body) for _ in range(10)]
    amqp = [publisher.publish("helpdesk.intake", "intake.phone", body) for _ in range(10)]
    results = await asyncio.gather(*http, *amqp)
    responses = results[:10]
    assert sorted(r.status_code for r in responses).count(201) <= 1
    numbers = {r.json()["ticket_no"] for r in responses}
    assert len(numbers) == 1
    [no] = numbers
    await tap.wait_events(lambda e: e.subject == no and e.type == "ticket.created")
    await asyncio.sleep(1.0)  # let the AMQP copies be consumed too
    assert len(tap.events(lambda e: e.data.get("external_id") == body["external_id"])) == 1
    async with intake.rt.pool.acquire() as conn:
        n = await conn.fetchval("SELECT count(*) FROM intake.tickets WHERE external_id = $1", body["external_id"])
    assert n == 1


async def test_numbers_unique_and_daily_under_concurrency(intake):
    bodies = [ticket(external_id=None) for _ in range(60)]
    rs = await asyncio.gather(*(intake.client.post("/v1/tickets", json=b) for b in bodies))
    numbers = [r.json()["ticket_no"] for r in rs]
    assert all(r.status_code == 201 for r in rs)
    assert len(set(numbers)) == 60
    assert all(n.startswith(today()) and len(n) == 14 for n in numbers)


async def test_numbers_unique_across_two_intake_replicas(intake, run_env):
    from services.intake.app import create_app
    from shared.settings import Settings
    from tests.conftest import start_service

    gen = start_service(create_app, Settings())
    second = await asyncio.wait_for(gen.__anext__(), 60)  # bounded: a hang fails here, naming the stage
    try:
        bodies = [ticket(external_id=None) for _ in range(40)]
        rs = await asyncio.wait_for(asyncio.gather(*(
            (intake if i % 2 else second).client.post("/v1/tickets", json=b) for i, b in enumerate(bodies)
        )), 60)
        numbers = [r.json()["ticket_no"] for r in rs]
        assert len(set(numbers)) == 40
    finally:
        await asyncio.wait_for(gen.aclose(), 60)


async def test_serial_restarts_each_day(intake):
    from services.intake import store

    from services.intake.domain import ticket_number

    async with intake.rt.pool.acquire() as conn:
        d, e = datetime(2001, 1, 1).date(), datetime(2001, 1, 2).date()
        for day in (d, e, d):
            await store.ensure_serial_sequence(intake.rt.pool, day=day)
        async with conn.transaction():
            assert await store.next_serial(conn, day=d) == 1
        assert await store.next_serial(conn, day=d) == 2
        assert await store.next_serial(conn, day=e) == 1
        assert await store.drop_old_serials(conn, before=e) >= 1
        assert await store.next_serial(conn, day=e) == 2
    assert ticket_number(d, 1) == "20010101000001"


async def test_api_key_required_and_caller_recorded(intake, tap):
    r = await intake.client.post("/v1/tickets", json=ticket(), headers={"X-API-Key": "wrong"})
    assert r.status_code == 401 and r.json()["errors"][0]["field"] == "X-API-Key"
    r = await intake.client.get("/v1/tickets/20260101000001", headers={"X-API-Key": ""})
    assert r.status_code == 401
    r = await intake.client.post("/v1/tickets", json=ticket(), headers={"X-API-Key": "gw-secret"})
    assert r.status_code == 201
    [event] = await tap.wait_events(lambda e: e.subject == r.json()["ticket_no"])
    assert event.data["caller"] == "gw"
    assert API_KEY != "gw-secret"


async def test_role_cannot_touch_other_schemas(intake, run_env):
    from shared import db
    from shared.settings import Settings

    s = Settings()
    await db.bootstrap(s, "routing")
    conn = await asyncpg.connect(db.role_dsn(s, "routing"))
    try:
        for sql in ("SELECT count(*) FROM intake.tickets", "CREATE TABLE intake.x (a int)",
                    "CREATE TABLE public.x (a int)"):
            try:
                await conn.execute(sql)
            except asyncpg.InsufficientPrivilegeError:
                continue
            raise AssertionError(f"routing role could run: {sql}")
    finally:
        await conn.close()


async def test_openapi_and_asyncapi_served(intake):
    r = await intake.client.get("/openapi.json")
    assert r.status_code == 200 and "/v1/tickets" in r.json()["paths"]
    r = await intake.client.get("/asyncapi.json")
    doc = r.json()
    assert r.status_code == 200 and doc["asyncapi"].startswith("3.")
    assert any("intake.tickets" in name for name in doc["channels"])


async def test_healthz_and_metrics(intake):
    r = await intake.client.get("/healthz")
    assert r.status_code == 200 and r.json()["checks"] == {"database": True, "broker": True}
    await intake.client.post("/v1/tickets", json=ticket())
    text = (await intake.client.get("/metrics")).text
    assert 'helpdesk_open_tickets{priority="none",status="new"}' in text
    assert "helpdesk_intake_received_total" in text
    assert "helpdesk_messages_consumed_total" in text and "helpdesk_consumer_seconds_bucket" in text
