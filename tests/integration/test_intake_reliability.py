"""Reliability: redeliveries are no-ops, the outbox survives a broker outage, queues are quorum with a DLX."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid

import pytest

from shared.envelope import new_event
from shared.settings import Settings
from tests import support
from tests.conftest import RUN_ID, start_service
from tests.integration.test_intake_create import ticket
from tests.integration.test_intake_lifecycle import new_ticket


async def count(intake, sql: str, *args) -> int:
    async with intake.rt.pool.acquire() as conn:
        return await conn.fetchval(sql, *args)


async def test_redelivered_intake_message_makes_one_ticket(intake, tap, publisher):
    body = ticket(external_id=None, subject=f"redelivery {uuid.uuid4().hex}")
    mid = uuid.uuid4().hex
    for _ in range(3):
        await publisher.publish("helpdesk.intake", "intake.web", {**body, "channel": "web"}, message_id=mid)
    await tap.wait_events(lambda e: e.type == "ticket.created" and e.data.get("subject") == body["subject"])
    await asyncio.sleep(1.0)
    assert len(tap.events(lambda e: e.data.get("subject") == body["subject"])) == 1
    assert await count(intake, "SELECT count(*) FROM intake.tickets WHERE subject = $1", body["subject"]) == 1


async def test_redelivered_command_applies_once(intake, tap, publisher):
    no = await new_ticket(intake)
    mid = uuid.uuid4().hex
    for _ in range(3):
        await publisher.publish("helpdesk.commands", "ticket.respond", {"ticket_no": no, "actor": "a"}, message_id=mid)
    await tap.wait_events(lambda e: e.subject == no and e.type == "ticket.responded")
    await asyncio.sleep(1.0)
    assert len(tap.events(lambda e: e.subject == no and e.type == "ticket.responded")) == 1
    assert (await intake.client.get(f"/v1/tickets/{no}")).json()["handling"]["responses"] == 1


async def test_redelivered_foreign_event_recorded_once(intake, publisher):
    no = await new_ticket(intake)
    event = new_event(service="sla", type="sla.started", ticket_no=no, seq=1,
                      data={"metric": "first_response", "due_at": "2030-01-01T00:00:00Z", "policy": "P2"})
    for _ in range(3):
        await publisher.publish("helpdesk.events", "sla.started", event.to_bytes(), message_id=event.id,
                                content_type="application/cloudevents+json")
    for _ in range(100):
        view = (await intake.client.get(f"/v1/tickets/{no}")).json()
        if len(view["timeline"]) >= 2:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    view = (await intake.client.get(f"/v1/tickets/{no}")).json()
    assert [e["type"] for e in view["timeline"]] == ["ticket.created", "sla.started"]
    assert view["sla"]["first_response"]["state"] == "running"


def queue_arguments(vhost: str) -> dict[str, tuple[str, dict]]:
    """Every queue of ``vhost``: name -> (type, arguments), as the broker holds them."""
    out = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "type", "arguments",
                          "--formatter", "json"], capture_output=True, text=True, timeout=60, check=True).stdout
    return {q["name"]: (q["type"], {k: v for k, _, v in q["arguments"]}) for q in json.loads(out)}


async def test_queues_are_quorum_with_delivery_limit_and_dlx(intake, run_env):
    """Every consumer queue the services declared is a quorum queue that dead-letters to helpdesk.dlx
    (at least once) after the configured delivery limit; the dead-letter queue takes every key."""
    queues = queue_arguments(run_env["AMQP_URL"].rsplit("/", 1)[1])
    service_queues = {n: q for n, q in queues.items() if n.split(".")[0] in ("intake", "routing", "sla",
                                                                             "notification", "survey", "review")}
    assert {"intake.tickets", "intake.commands", "intake.timeline"} <= set(service_queues)
    limit = Settings().delivery_limit
    for name, (kind, args) in service_queues.items():
        assert kind == "quorum", name
        assert args.get("x-delivery-limit") == limit, (name, args)
        assert args.get("x-dead-letter-exchange") == "helpdesk.dlx", (name, args)
        assert args.get("x-dead-letter-strategy") == "at-least-once", (name, args)
    assert queues["helpdesk.dead-letters"][0] == "quorum"
    import aio_pika

    conn = await aio_pika.connect(run_env["AMQP_URL"])
    try:  # redeclaring with other arguments fails: the broker keeps what the services declared
        ch = await conn.channel()
        with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed):
            await ch.declare_queue("intake.tickets", durable=True, arguments={"x-queue-type": "classic"})
    finally:
        await conn.close()


@pytest.fixture
async def isolated_env(run_env):  # noqa: ANN001 - the suite's broker and database are needed
    """Its own vhost and database: a second intake whose outbox no other relay drains."""
    name = f"helpdesk_test_{RUN_ID}_outage"
    support.create_vhost(name)
    yield {"vhost": name, "db": name}
    support.delete_vhost(name)
    await support.drop_database(name)


async def test_outbox_survives_broker_outage(isolated_env):
    proxy = support.TcpProxy(5672)
    port = await proxy.start()
    vhost = isolated_env["vhost"]
    settings = Settings(**{
        "AMQP_URL": f"amqp://guest:guest@127.0.0.1:{port}/{vhost}",
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{isolated_env['db']}",
    })
    direct = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    from services.intake.app import create_app

    gen = start_service(create_app, settings)
    svc = await gen.__anext__()
    try:
        async with support.Tap(direct) as tap:
            await proxy.cut()  # the broker is gone for the service
            numbers = []
            for _ in range(20):
                r = await svc.client.post("/v1/tickets", json=ticket())
                assert r.status_code == 201  # intake keeps accepting: the outbox holds the events
                numbers.append(r.json()["ticket_no"])
            await asyncio.sleep(2.0)
            async with svc.rt.pool.acquire() as conn:
                pending = await conn.fetchval("SELECT count(*) FROM intake.outbox WHERE sent_at IS NULL")
            assert pending == 20
            assert tap.events(lambda e: e.subject in numbers) == []
            assert (await svc.client.get("/healthz")).status_code == 503

            await proxy.restore()
            events = await tap.wait_events(lambda e: e.subject in numbers, count=20, timeout=60)
            await asyncio.sleep(1.0)
            events = tap.events(lambda e: e.subject in numbers)
            assert {e.subject for e in events} == set(numbers)
            by_ticket = {}
            for e in events:
                by_ticket.setdefault(e.subject, set()).add(e.id)
            assert all(len(ids) == 1 for ids in by_ticket.values())  # one event per ticket, never a second
            async with svc.rt.pool.acquire() as conn:
                assert await conn.fetchval("SELECT count(*) FROM intake.outbox WHERE sent_at IS NULL") == 0
    finally:
        await gen.aclose()
        await proxy.cut()
