"""The shared consumer rules on a real broker: failures are retried, then dead-lettered on the last
delivery the quorum queue's limit allows; a poison message never blocks the messages behind it."""

from __future__ import annotations

import asyncio
import uuid

import contextlib
from collections.abc import AsyncIterator

import aio_pika
from faststream.rabbit import RabbitBroker

from shared import topology
from shared.consumer import Consumer
from shared.errors import DomainError


@contextlib.asynccontextmanager
async def consuming(url: str, queue, handler) -> AsyncIterator[None]:  # noqa: ANN001
    """``handler`` consuming ``queue`` (bound to helpdesk.intake) as a service's consumer does."""
    broker = RabbitBroker(url)  # the dead letters' publisher
    await broker.connect()
    await topology.declare_all(broker)
    connection = await aio_pika.connect_robust(url)
    consumer = Consumer(broker, queue, topology.INTAKE, handler, service="test")
    await consumer.start(connection)
    try:
        yield
    finally:
        await consumer.stop()
        await connection.close()
        await broker.stop()


async def test_poison_message_retried_then_dead_lettered_and_queue_flows(run_env, publisher, dlq_tap):
    seen: list[str] = []
    attempts: dict[str, int] = {}
    queue_name = f"test.consumer.{uuid.uuid4().hex[:8]}"
    queue = topology.quorum_queue(queue_name, routing_key=f"{queue_name}.#", delivery_limit=2)

    async def handler(msg, _tx) -> None:
        body = msg.body.decode()
        attempts[body] = attempts.get(body, 0) + 1
        if body == "boom":
            raise RuntimeError("database unavailable")  # infrastructure: retried
        if body == "bad":
            raise DomainError("body", "not a ticket")  # domain: dead-lettered at once
        seen.append(body)

    async with consuming(run_env["AMQP_URL"], queue, handler):
        await publisher.publish("helpdesk.intake", f"{queue_name}.x", b"boom", message_id=f"{queue_name}-boom")
        await publisher.publish("helpdesk.intake", f"{queue_name}.x", b"bad", message_id=f"{queue_name}-bad")
        for i in range(5):
            await publisher.publish("helpdesk.intake", f"{queue_name}.x", f"ok{i}".encode())
        dead = await dlq_tap.wait_messages(lambda m: (m.message_id or "").startswith(queue_name), count=2, timeout=30)
        for _ in range(50):
            if len(seen) == 5:
                break
            await asyncio.sleep(0.1)
        assert sorted(seen) == [f"ok{i}" for i in range(5)]
        by_id = {m.message_id: m for m in dead}
        bad = by_id[f"{queue_name}-bad"]
        assert bad.headers["x-helpdesk-reason"] == "body: not a ticket" and attempts["bad"] == 1
        boom = by_id[f"{queue_name}-boom"]
        assert attempts["boom"] >= 2
        # the last delivery the limit allows is dead-lettered by the consumer (masked), naming the error
        reason = boom.headers["x-helpdesk-reason"]
        assert reason.startswith("delivery_limit: failed 2 time(s)") and "database unavailable" in reason


async def test_dead_letters_listed_and_replayed_after_the_cause_is_fixed(run_env, publisher):
    from shared import deadletters

    queue_name = f"test.replay.{uuid.uuid4().hex[:8]}"
    queue = topology.quorum_queue(queue_name, routing_key=f"{queue_name}.#", delivery_limit=1)
    healthy = asyncio.Event()
    done: list[bytes] = []

    async def handler(msg, _tx) -> None:
        if not healthy.is_set():
            raise RuntimeError("database unavailable")
        done.append(msg.body)

    async with consuming(run_env["AMQP_URL"], queue, handler):
        await publisher.publish("helpdesk.intake", f"{queue_name}.k", b"order-1", message_id=f"{queue_name}-1")
        listed = []
        for _ in range(100):
            listed = [d for d in await deadletters.list_dead(run_env["AMQP_URL"], 500) if d["queue"] == queue_name]
            if listed:
                break
            await asyncio.sleep(0.1)
        [dead] = listed
        assert dead["routing_key"] == f"{queue_name}.k" and "delivery_limit" in dead["reason"]
        assert dead["exchange"] == "helpdesk.intake" and dead["body"] == "order-1"

        healthy.set()  # the outage is over
        assert await deadletters.replay(run_env["AMQP_URL"], 500, queue=queue_name) == 1
        for _ in range(100):
            if done:
                break
            await asyncio.sleep(0.05)
        assert done == [b"order-1"]
        assert [d for d in await deadletters.list_dead(run_env["AMQP_URL"], 500) if d["queue"] == queue_name] == []


async def _until(predicate, timeout: float = 30.0) -> bool:  # noqa: ANN001
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.1)
    return False


async def test_consumer_recovers_when_the_broker_cancels_it_and_when_its_connection_drops(run_env, publisher):
    """The consumer sits on aiormq's channel beneath aio-pika's robust one: a queue deleted under it
    (the broker cancels the consumer) is declared and consumed again, and after the connection is
    closed by the broker the restored channel consumes again — nothing published later is missed."""
    from shared.topology import INTAKE

    seen: list[str] = []
    queue_name = f"test.recover.{uuid.uuid4().hex[:8]}"
    queue = topology.quorum_queue(queue_name, routing_key=f"{queue_name}.#", delivery_limit=3)

    async def handler(msg, _tx) -> None:
        seen.append(msg.body.decode())

    url = run_env["AMQP_URL"]
    broker = RabbitBroker(url)
    await broker.connect()
    await topology.declare_all(broker)
    connection = await aio_pika.connect_robust(url, client_properties={"connection_name": queue_name})
    consumer = Consumer(broker, queue, INTAKE, handler, service="test")
    await consumer.start(connection)
    try:
        await publisher.publish("helpdesk.intake", f"{queue_name}.x", b"before")
        assert await _until(lambda: "before" in seen)
        admin = await aio_pika.connect(url)
        async with admin:
            await (await admin.channel()).queue_delete(queue_name)  # the broker cancels our consumer
        assert await _until(lambda: consumer._tag is not None and consumer._queue is not None, 15)
        await asyncio.sleep(1.5)  # re-declared and bound by the consumer itself
        await publisher.publish("helpdesk.intake", f"{queue_name}.x", b"after-cancel")
        assert await _until(lambda: "after-cancel" in seen), seen
        # the broker drops the consumers' connection: aio-pika restores the channel, we consume again
        from scripts.harness import rabbitmqctl
        rabbitmqctl("close_connection", await _connection_pid(queue_name), "test: dropped")
        await asyncio.sleep(1.0)
        for _ in range(100):
            await publisher.publish("helpdesk.intake", f"{queue_name}.x", b"after-reconnect")
            if await _until(lambda: "after-reconnect" in seen, 2):
                break
        assert "after-reconnect" in seen
    finally:
        await consumer.stop()
        await connection.close()
        await broker.stop()


async def _connection_pid(name: str) -> str:
    import subprocess

    for _ in range(50):
        out = subprocess.run(["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
                             capture_output=True, text=True).stdout
        for line in out.splitlines():
            if name in line:
                return line.split("\t", 1)[0]
        await asyncio.sleep(0.2)
    raise AssertionError(f"no connection named {name}")
