"""shared.amqpwire on the real broker: the frames of one event-loop turn reach the socket in one write,
in order, every publish confirmed; the robust connection still reconnects and restores its channel."""

from __future__ import annotations

import asyncio
import subprocess
import uuid

import aio_pika
import aiormq
import pytest

from shared import amqpwire

pytestmark = pytest.mark.integration


async def test_a_turns_publishes_leave_in_one_write_in_order_and_confirmed(run_env: dict[str, str]) -> None:
    conn = await amqpwire.connect_robust(run_env["AMQP_URL"])
    try:
        channel = await conn.channel(publisher_confirms=True)
        queue = await channel.declare_queue(f"amqpwire-{uuid.uuid4().hex[:8]}", exclusive=True)
        raw = await channel.get_underlay_channel()
        writer = conn.kwargs["transport_factory"].writer
        frames, writes = writer.frames, writer.writes
        bodies = [f"m{i}".encode() for i in range(50)]
        # as the outbox relay publishes a batch: every publish in flight at once, then the confirms
        confirms = await asyncio.gather(*(
            raw.basic_publish(b, exchange="", routing_key=queue.name, wait=False,
                              properties=aiormq.spec.Basic.Properties(delivery_mode=2)) for b in bodies))
        assert all(isinstance(c, aiormq.spec.Basic.Ack) for c in confirms)
        assert writer.frames - frames == 50
        assert writer.writes - writes <= 5, (writer.frames - frames, writer.writes - writes)  # one per turn, not 50
        got = []
        for _ in bodies:
            msg = await queue.get(timeout=5)
            got.append(msg.body)
            await msg.ack()
        assert got == bodies  # the joined writes keep the frames' order
    finally:
        await conn.close()


def close_connection_named(vhost: str, name: str) -> None:
    """Close (broker side) the one connection of ``vhost`` whose client named itself ``name``; the other
    connections of the run's vhost (the services the session keeps running) are left alone."""
    listed = subprocess.run(["rabbitmqctl", "-q", "list_connections", "-p", vhost, "pid", "client_properties"],
                            check=True, capture_output=True, text=True, timeout=60).stdout
    [pid] = [line.split("\t", 1)[0] for line in listed.splitlines() if name in line]
    subprocess.run(["rabbitmqctl", "-q", "close_connection", pid, "test: reconnect"], check=True,
                   capture_output=True, timeout=60)


async def test_the_robust_connection_reconnects_and_publishes_again(run_env: dict[str, str]) -> None:
    name = f"amqpwire-reconnect-{uuid.uuid4().hex[:8]}"
    conn = await amqpwire.connect_robust(f"{run_env['AMQP_URL']}?name={name}")
    try:
        channel = await conn.channel(publisher_confirms=True)
        queue = await channel.declare_queue(f"amqpwire-{uuid.uuid4().hex[:8]}", durable=False, auto_delete=False)
        first = conn.kwargs["transport_factory"].writer
        await channel.default_exchange.publish(aio_pika.Message(b"before"), routing_key=queue.name)
        await asyncio.to_thread(close_connection_named, run_env["AMQP_URL"].rsplit("/", 1)[1], name)
        for _ in range(100):
            await asyncio.sleep(0.1)
            if conn.kwargs["transport_factory"].writer is not first and not channel.is_closed:
                break
        await asyncio.sleep(0.5)  # the channel restored on the new connection
        await channel.default_exchange.publish(aio_pika.Message(b"after"), routing_key=queue.name)
        bodies = []
        for _ in range(2):
            msg = await queue.get(timeout=5)
            bodies.append(msg.body)
            await msg.ack()
        assert bodies == [b"before", b"after"]
        assert conn.kwargs["transport_factory"].writer is not first  # a new socket, written the same way
        await queue.delete()
    finally:
        await conn.close()
