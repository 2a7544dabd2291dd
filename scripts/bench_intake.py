"""Intake throughput over AMQP, end to end: tickets published by a channel until their
``ticket.created`` is on ``helpdesk.events`` (published with confirms by the outbox relay).

    python -m scripts.bench_intake [--tickets 5000] [--rate 0 (flat out) | N per second]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

import aio_pika
import asyncpg
import orjson

from scripts.harness import cpu_seconds, environment, percentile, rss_mb, service
from shared.trust import url_user


async def run(tickets: int, rate: float, port: int) -> None:
    async with environment("bench_intake") as env, service("intake", env, port) as proc:
        conn = await aio_pika.connect_robust(env["AMQP_URL"])
        ch = await conn.channel(publisher_confirms=True)
        intake_ex = await ch.declare_exchange("helpdesk.intake", aio_pika.ExchangeType.TOPIC, durable=True)
        events_ex = await ch.declare_exchange("helpdesk.events", aio_pika.ExchangeType.TOPIC, durable=True)
        tap = await ch.declare_queue(exclusive=True)
        await tap.bind(events_ex, routing_key="ticket.created")
        sent: dict[str, float] = {}
        latencies: list[float] = []
        done = asyncio.Event()

        async def on_event(msg: aio_pika.abc.AbstractIncomingMessage) -> None:
            ext = orjson.loads(msg.body)["data"].get("external_id")
            if ext in sent:
                latencies.append(time.perf_counter() - sent.pop(ext))
                if len(latencies) == tickets:
                    done.set()

        await tap.consume(on_event, no_ack=True)
        cpu0 = cpu_seconds(proc.pid)
        start = time.perf_counter()
        pending = set()
        for i in range(tickets):
            ext = f"bench-{uuid.uuid4().hex}"
            body = orjson.dumps({"channel": "web", "external_id": ext, "customer": {"name": "压测", "tier": "standard"},
                                 "subject": "无法登录", "description": f"bench ticket {i}"})
            sent[ext] = time.perf_counter()
            pending.add(asyncio.ensure_future(intake_ex.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, content_type="application/json",
                                 user_id=url_user(env["AMQP_URL"])),
                routing_key="intake.web")))
            if rate:
                await asyncio.sleep(max(0.0, start + (i + 1) / rate - time.perf_counter()))
            if len(pending) >= 500:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        published = time.perf_counter() - start
        while not done.is_set():
            try:
                await asyncio.wait_for(done.wait(), timeout=5)
            except TimeoutError:
                db = await asyncpg.connect(env["DATABASE_URL"])
                stored = await db.fetchval("SELECT count(*) FROM intake.tickets")
                unsent = await db.fetchval("SELECT count(*) FROM intake.outbox WHERE sent_at IS NULL")
                await db.close()
                print(f"  ... {len(latencies)}/{tickets} ticket.created after {time.perf_counter() - start:.0f}s"
                      f" (stored {stored}, outbox unsent {unsent})", flush=True)
                if time.perf_counter() - start > 600:
                    raise
        elapsed = time.perf_counter() - start
        cpu = cpu_seconds(proc.pid) - cpu0
        print(f"intake bench: {tickets} tickets over AMQP, rate={'flat out' if not rate else rate}")
        print(f"  published (confirmed) in {published:.2f}s")
        print(f"  end to end: {elapsed:.2f}s  ->  {tickets / elapsed:.0f} tickets/s")
        print(f"  latency publish->ticket.created: p50 {percentile(latencies, 50)*1000:.1f} ms, "
              f"p99 {percentile(latencies, 99)*1000:.1f} ms, max {max(latencies)*1000:.1f} ms")
        print(f"  intake process: CPU {cpu:.1f}s ({cpu / elapsed * 100:.0f}% of one core), RSS {rss_mb(proc.pid):.0f} MB")
        await conn.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tickets", type=int, default=5000)
    p.add_argument("--rate", type=float, default=0.0)
    p.add_argument("--port", type=int, default=18001)
    a = p.parse_args()
    asyncio.run(run(a.tickets, a.rate, a.port))


if __name__ == "__main__":
    main()
