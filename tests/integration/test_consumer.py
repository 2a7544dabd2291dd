"""The shared consumer rules on a real broker: failures are retried, then dead-lettered on the last
delivery the quorum queue's limit allows; a poison message never blocks the messages behind it."""

from __future__ import annotations

import asyncio
import uuid

from faststream.rabbit import RabbitBroker

from shared import topology
from shared.consumer import subscribe
from shared.errors import DomainError


async def test_poison_message_retried_then_dead_lettered_and_queue_flows(run_env, publisher, dlq_tap):
    seen: list[str] = []
    attempts: dict[str, int] = {}
    broker = RabbitBroker(run_env["AMQP_URL"])
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

    subscribe(broker, queue, topology.INTAKE, handler, service="test")
    await broker.connect()
    await topology.declare_all(broker)
    await broker.start()
    try:
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
    finally:
        await broker.stop()


async def test_dead_letters_listed_and_replayed_after_the_cause_is_fixed(run_env, publisher):
    from shared import deadletters

    broker = RabbitBroker(run_env["AMQP_URL"])
    queue_name = f"test.replay.{uuid.uuid4().hex[:8]}"
    queue = topology.quorum_queue(queue_name, routing_key=f"{queue_name}.#", delivery_limit=1)
    healthy = asyncio.Event()
    done: list[bytes] = []

    async def handler(msg, _tx) -> None:
        if not healthy.is_set():
            raise RuntimeError("database unavailable")
        done.append(msg.body)

    subscribe(broker, queue, topology.INTAKE, handler, service="test")
    await broker.connect()
    await topology.declare_all(broker)
    await broker.start()
    try:
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
    finally:
        await broker.stop()
