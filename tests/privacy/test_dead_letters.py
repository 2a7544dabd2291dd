"""Dead letters hold no raw contact (body and reason masked before dead-lettering, ``list`` masks
what it prints) and do not live forever (TTL and length cap, also on a queue declared before them)."""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
import sys
import uuid

import aio_pika
import orjson
import pytest
from faststream.rabbit import RabbitBroker

from shared import deadletters, topology
from shared.consumer import subscribe
from shared.settings import Settings
from tests import support

PHONE, EMAIL, ID_CARD = "13812345678", "lilei@example.com", "11010519491231002X"
RAW = (PHONE.encode(), b"lilei@", ID_CARD.encode(), b"1234 5678")


def _clean(data: bytes | str) -> bool:
    b = data if isinstance(data, bytes) else data.encode()
    return not any(r in b for r in RAW)


def _queue_args(vhost: str, name: str) -> str:
    out = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "arguments", "policy"],
                         check=True, capture_output=True, text=True, timeout=60).stdout
    return next((line for line in out.splitlines() if line.startswith(name + "\t")), "")


async def test_refused_intake_message_is_dead_lettered_masked(intake, publisher, dlq_tap):
    mid = f"dl-{uuid.uuid4().hex}"
    body = {"channel": PHONE, "customer": {"name": "李雷", "phone": "138 1234 5678", "email": EMAIL},
            "description": f"身份证 {ID_CARD}，回电 {PHONE}"}
    await publisher.publish("helpdesk.intake", "intake.web", body, message_id=mid)
    [dead] = await dlq_tap.wait_messages(lambda m: m.message_id == mid)
    reason = dead.headers["x-helpdesk-reason"]
    assert "does not match routing key" in reason and "138****5678" in reason and _clean(reason)
    assert _clean(dead.body)
    doc = orjson.loads(dead.body)
    assert doc["customer"]["phone"] == "138****5678" and doc["customer"]["email"] == "l***@example.com"
    assert doc["description"].startswith("身份证 110***********002X")


async def test_failing_message_dead_lettered_by_the_consumer_is_masked(run_env, publisher, dlq_tap):
    broker = RabbitBroker(run_env["AMQP_URL"])
    name = f"test.privacy.{uuid.uuid4().hex[:8]}"
    queue = topology.quorum_queue(name, routing_key=f"{name}.#", delivery_limit=2)

    async def handler(msg, _tx) -> None:
        raise RuntimeError(f"database unavailable while saving {PHONE}")

    subscribe(broker, queue, topology.INTAKE, handler, service="test")
    await broker.connect()
    await topology.declare_all(broker)
    await broker.start()
    try:
        await publisher.publish("helpdesk.intake", f"{name}.x", f"call {EMAIL} or {PHONE}".encode(),
                                message_id=f"{name}-1", content_type="text/plain")
        [dead] = await dlq_tap.wait_messages(lambda m: m.message_id == f"{name}-1", timeout=30)
        assert dead.body == b"call l***@example.com or 138****5678"
        assert dead.headers["x-helpdesk-reason"].startswith("delivery_limit: failed 2 time(s)")
        assert _clean(dead.headers["x-helpdesk-reason"]) and "138****5678" in dead.headers["x-helpdesk-reason"]
    finally:
        await broker.stop()


@pytest.fixture
async def vhost():
    name = f"helpdesk_test_dlq_{uuid.uuid4().hex[:8]}"
    support.create_vhost(name)
    yield name
    support.delete_vhost(name)


def _settings(vhost: str, **env: str) -> Settings:
    return Settings(AMQP_URL=f"amqp://guest:guest@127.0.0.1:5672/{vhost}", **env)


async def test_dead_letter_queue_has_ttl_and_length_cap_and_messages_expire(vhost):
    s = _settings(vhost, HELPDESK_DEAD_LETTER_TTL="1s", HELPDESK_DEAD_LETTER_MAX="3")
    assert await topology.declare_dead_letter_queue(s.amqp_url, s) is True
    line = _queue_args(vhost, "helpdesk.dead-letters")
    assert "x-message-ttl" in line and "1000" in line and "x-max-length" in line and "drop-head" in line
    assert Settings().dead_letter_ttl.days == 30  # the default
    conn = await aio_pika.connect(s.amqp_url)
    async with conn:
        ch = await conn.channel(publisher_confirms=True)
        dlx = await ch.declare_exchange("helpdesk.dlx", aio_pika.ExchangeType.TOPIC, durable=True)
        for i in range(5):
            await dlx.publish(aio_pika.Message(f"m{i}".encode()), routing_key="intake.web")
        q = await ch.declare_queue("helpdesk.dead-letters", passive=True)
        assert q.declaration_result.message_count <= 3  # the cap: the oldest were dropped
        for _ in range(60):
            q = await ch.declare_queue("helpdesk.dead-letters", passive=True)
            if q.declaration_result.message_count == 0:
                break
            await asyncio.sleep(0.1)
        assert q.declaration_result.message_count == 0  # expired


async def test_existing_queue_without_limits_is_kept_and_the_named_policy_applies_them(vhost, caplog):
    s = _settings(vhost, HELPDESK_DEAD_LETTER_TTL="2h")
    conn = await aio_pika.connect(s.amqp_url)
    async with conn:  # an older deployment's queue: no TTL, no cap
        ch = await conn.channel()
        await ch.declare_queue("helpdesk.dead-letters", durable=True, arguments={"x-queue-type": "quorum"})
    assert await topology.declare_dead_letter_queue(s.amqp_url, s) is False  # no crash: kept as it is
    assert any("policy" in r.getMessage() for r in caplog.records)
    command = shlex.split(topology.dead_letter_policy(s))
    assert command[:2] == ["rabbitmqctl", "set_policy"]
    subprocess.run([*command[:2], "-p", vhost, *command[2:]], check=True, capture_output=True, timeout=60)
    line = _queue_args(vhost, "helpdesk.dead-letters")
    assert line.endswith("helpdesk-dead-letters"), line  # the policy is in force on the queue
    # the services still start against it: declare_all does not raise
    broker = RabbitBroker(s.amqp_url)
    await broker.connect()
    try:
        await topology.declare_all(broker, s)
    finally:
        await broker.stop()


async def test_list_never_prints_a_raw_contact_even_for_broker_dead_letters(vhost):
    s = _settings(vhost)
    await topology.declare_dead_letter_queue(s.amqp_url, s)
    conn = await aio_pika.connect(s.amqp_url)
    async with conn:  # as the broker dead-letters: the raw body, the reason only in x-death
        ch = await conn.channel(publisher_confirms=True)
        dlx = await ch.declare_exchange("helpdesk.dlx", aio_pika.ExchangeType.TOPIC, durable=True)
        body = orjson.dumps({"customer": {"name": "李雷", "phone": PHONE, "email": EMAIL},
                             "description": f"卡号 4111 1111 1111 1111 身份证 {ID_CARD}"})
        await dlx.publish(aio_pika.Message(body, headers={"x-helpdesk-reason": f"bad phone {PHONE}"},
                                           message_id="raw-1"), routing_key="intake.web")
        await dlx.publish(aio_pika.Message(f"plain {EMAIL}".encode(), message_id="raw-2"), routing_key="intake.web")
    listed = await deadletters.list_dead(s.amqp_url, 10)
    assert {d["message_id"] for d in listed} == {"raw-1", "raw-2"}
    for d in listed:
        assert _clean(orjson.dumps(d)), d
    env = {**os.environ, "AMQP_URL": s.amqp_url}
    out = subprocess.run([sys.executable, "-m", "shared.deadletters", "list"], env=env, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert "138****5678" in out and "l***@example.com" in out and _clean(out), out


async def test_replay_of_a_masked_intake_message_registers_the_ticket_without_the_contact():
    body = orjson.dumps({"channel": "web", "customer": {"name": "李雷", "phone": "138****5678", "tier": "vip"},
                         "subject": "x"})
    replayed = orjson.loads(deadletters._replayable(body))
    assert replayed["customer"] == {"name": "李雷", "tier": "vip"}
    assert deadletters._replayable(b"not json") == b"not json"
