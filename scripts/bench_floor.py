"""The broker's floor for one ticket (``make bench-floor``): what RabbitMQ costs to carry a ticket's
messages through this project's topology when nothing else happens — no service logic, no database.

    python -m scripts.bench_floor [--tickets N] [--window 500] [--ack-every 32] [--rate TICKETS_PER_S] [--recorder]

1. Every service is started once in a fresh vhost (each declares its queues, its bindings and the
   event log stream), then stopped: the topology is the real one.
2. A publisher sends, per ticket, what the pipeline sends until the first customer notification: the
   intake message (``helpdesk.intake``, ``intake.web``) and six events to ``helpdesk.events``
   (``ticket.created``, ``ticket.routed``, ``sla.started`` twice, ``notification.sent`` twice),
   persistent, with publisher confirms (``--window`` in flight), bodies of the real events' size;
   flat out, or ``--rate`` tickets a second.
3. One consumer per service queue acks with ``multiple`` every ``--ack-every`` deliveries (and when
   idle), as the services' batches do.
4. Printed: deliveries per ticket per queue; the broker's CPU (the whole Erlang VM) and this client's
   CPU, in ms per ticket. Then the same with the review's and the timeline's queues unbound and both
   reading the event log stream instead (the design the issue's note proposes), so its saving is
   known before it is built.

Only a benchmark: it asserts nothing. Other work on the broker is counted too (keep the machine quiet).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import aio_pika
import orjson

from scripts.bench_e2e import broker_pids, cpu_of
from scripts.harness import FOLLOWED, Stack, environment, ticket_body

EVENTS = "helpdesk.events"
EVENT_LOG = "helpdesk.events.log"
TICKET = [("ticket.created", "intake"), ("ticket.routed", "routing"), ("sla.started", "sla"),
          ("sla.started", "sla"), ("notification.sent", "notification"), ("notification.sent", "notification")]
STREAM_READERS = ("review.events", "intake.timeline")  # the variant: these two read the event log instead


def event_body(etype: str, source: str, ticket_no: str, seq: int) -> bytes:
    """A CloudEvent about the size of the pipeline's own (masked customer, the ticket's fields)."""
    return orjson.dumps({
        "specversion": "1.0", "id": str(uuid.uuid4()), "source": f"/helpdesk/{source}", "type": etype,
        "subject": ticket_no, "time": datetime.now(UTC).isoformat(), "datacontenttype": "application/json",
        "data": {"ticket_no": ticket_no, "seq": seq, "channel": "web", "priority": "P3", "category": "fault",
                 "department": "technical", "assignee": "agent-7", "customer": {"name": "李*", "phone": "138****0000"},
                 "customer_key": "k" * 64, "subject": "设备无法启动", "description": "按电源键没有反应" * 4,
                 "metric": "first_response", "due_at": datetime.now(UTC).isoformat(), "template": "ticket_received"},
    })


def broker_cpu() -> float:
    return cpu_of(broker_pids())


def bindings(vhost: str) -> list[tuple[str, str, str]]:
    """(exchange, queue, routing key) of every queue binding of ``vhost``."""
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_bindings", "-p", vhost, "--formatter", "json",
         "source_name", "destination_name", "destination_kind", "routing_key"],
        check=True, capture_output=True, text=True, timeout=60).stdout
    return [(b["source_name"], b["destination_name"], b["routing_key"]) for b in orjson.loads(out or "[]")
            if b["destination_kind"] == "queue" and b["source_name"]]


class Reader:
    """Consumes one queue (or the stream) and acks with ``multiple`` every ``ack_every`` deliveries."""

    def __init__(self, ch: aio_pika.abc.AbstractChannel, name: str, ack_every: int, label: str | None = None,
                 *, no_ack: bool = False) -> None:
        self.ch, self.name, self.ack_every, self.label, self.no_ack = ch, name, ack_every, label or name, no_ack
        self.got = 0
        self._unacked = 0
        self._last: aio_pika.abc.AbstractIncomingMessage | None = None

    async def start(self, arguments: dict[str, Any] | None = None) -> None:
        queue = await self.ch.get_queue(self.name, ensure=False)
        await queue.consume(self._on, arguments=arguments, no_ack=self.no_ack)

    async def _on(self, msg: aio_pika.abc.AbstractIncomingMessage) -> None:
        self.got += 1
        if self.no_ack:
            return
        self._unacked += 1
        self._last = msg
        if self._unacked >= self.ack_every:
            await self.flush()

    async def flush(self) -> None:
        if self._last is not None and self._unacked:
            last, self._last, self._unacked = self._last, None, 0
            await last.ack(multiple=True)


async def run(url: str, vhost: str, n: int, window: int, ack_every: int, *, stream_readers: bool,
              rate: float = 0.0, recorder: bool = False) -> None:
    conn = await aio_pika.connect_robust(url)
    pub = await conn.channel(publisher_confirms=True)
    intake_ex = await pub.get_exchange("helpdesk.intake", ensure=False)
    events_ex = await pub.get_exchange(EVENTS, ensure=False)
    queues = sorted({q for _, q, _ in bindings(vhost) if q != EVENT_LOG})  # nobody reads the log live
    if stream_readers:
        ch = await conn.channel()
        for ex, q, key in bindings(vhost):
            if q in STREAM_READERS and ex == EVENTS:
                queue = await ch.get_queue(q, ensure=False)
                await queue.unbind(ex, routing_key=key)
        queues = [q for q in queues if q not in STREAM_READERS]
    readers = []
    for q in queues:
        ch = await conn.channel()
        await ch.set_qos(prefetch_count=256)
        reader = Reader(ch, q, ack_every)
        await reader.start()
        readers.append(reader)
    if stream_readers:
        for name in STREAM_READERS:
            ch = await conn.channel()
            await ch.set_qos(prefetch_count=256)
            reader = Reader(ch, EVENT_LOG, ack_every, label=f"{name} (from the stream)")
            await reader.start(arguments={"x-stream-offset": "next"})
            readers.append(reader)

    async def idle_acks() -> None:
        while True:
            await asyncio.sleep(0.005)
            for r in readers:
                await r.flush()

    if recorder:  # what bench_e2e's own observer adds: a transient exclusive queue on the followed events, no acks
        ch = await conn.channel()
        await ch.set_qos(prefetch_count=1000)
        queue = await ch.declare_queue(f"floor.recorder.{uuid.uuid4().hex[:6]}", durable=False, exclusive=True)
        for key in FOLLOWED:
            await queue.bind(EVENTS, routing_key=key)
        reader = Reader(ch, queue.name, 1, label="bench_e2e's recorder (transient, no acks)", no_ack=True)
        await reader.start()
        readers.append(reader)
    acker = asyncio.create_task(idle_acks())
    slots = asyncio.Semaphore(window)
    pending: set[asyncio.Task[None]] = set()

    async def send(ex: aio_pika.abc.AbstractExchange, key: str, body: bytes) -> None:
        try:
            await ex.publish(aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                              content_type="application/json"), routing_key=key)
        finally:
            slots.release()

    async def publish(ex: aio_pika.abc.AbstractExchange, key: str, body: bytes) -> None:
        await slots.acquire()
        task = asyncio.create_task(send(ex, key, body))
        pending.add(task)
        task.add_done_callback(pending.discard)

    broker0, client0, start = broker_cpu(), time.process_time(), time.perf_counter()
    for i in range(n):
        if rate:  # paced: the broker's cost a ticket depends on how many arrive together
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        ticket_no = f"20261203{i:06d}"
        await publish(intake_ex, "intake.web", ticket_body(f"floor-{i}", i))
        for seq, (etype, source) in enumerate(TICKET, start=1):
            await publish(events_ex, etype, event_body(etype, source, ticket_no, seq))
    await asyncio.gather(*list(pending))
    last, still = -1, time.monotonic()
    while True:  # until nothing more arrives
        total = sum(r.got for r in readers)
        if total != last:
            last, still = total, time.monotonic()
        elif time.monotonic() - still > 1.0:
            break
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - start - 1.0
    acker.cancel()
    for r in readers:
        await r.flush()
    broker, client = broker_cpu() - broker0, time.process_time() - client0
    title = ("review and timeline read the event log" if stream_readers else "the topology as deployed")
    title += " + bench_e2e's recorder" if recorder else ""
    deliveries = Counter({r.label: r.got for r in readers})
    print(f"\n{title}: {n} tickets, {n * (1 + len(TICKET))} publishes, {sum(deliveries.values())} deliveries"
          f" in {elapsed:.1f}s")
    for name, got in sorted(deliveries.items()):
        print(f"    {name:<44} {got / n:5.2f} deliveries a ticket")
    print(f"  RabbitMQ CPU {broker / n * 1000:5.2f} ms a ticket   this client {client / n * 1000:5.2f} ms a ticket"
          f"   ({n / elapsed:.0f} tickets/s through the broker alone)", flush=True)
    await conn.close()


async def main_async(a: argparse.Namespace) -> None:
    print(f"bench_floor at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, load average before:"
          f" {os.getloadavg()[0]:.1f}")
    for variant in (False, True):
        async with environment("bench_floor") as env:
            stack = Stack(env, extra_env={"HELPDESK_LOG_LEVEL": "WARNING"})
            await stack.start()  # every service declares its queues, bindings and the event log
            await stack.stop()
            vhost = env["AMQP_URL"].rsplit("/", 1)[1]
            await run(env["AMQP_URL"], vhost, a.tickets, a.window, a.ack_every, stream_readers=variant, rate=a.rate,
                      recorder=a.recorder)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tickets", type=int, default=5000)
    p.add_argument("--window", type=int, default=500)
    p.add_argument("--ack-every", type=int, default=32)
    p.add_argument("--recorder", action="store_true", help="add bench_e2e's recorder queue (its cost on the broker)")
    p.add_argument("--rate", type=float, default=0.0, help="tickets/s to publish at (0: flat out)")
    asyncio.run(main_async(p.parse_args()))


if __name__ == "__main__":
    main()
