"""Replaying the event log (the ``helpdesk.events.log`` stream) from its first offset into the facts.

The end: before reading, a marker (a CloudEvent of type ``review.replay_marker``, about no ticket) is
published straight to the stream; the replay stops when it reads its own marker, so it has read every
event the stream held when the rebuild began — events that arrive meanwhile are folded by the live
consumer as usual (both sides are idempotent, so the overlap changes nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import aio_pika
import asyncpg

from services.review import usecases
from services.review.domain import BusinessTime
from shared import trust
from shared.envelope import CONTENT_TYPE, CloudEvent
from shared.errors import DomainError
from shared.settings import Settings
from shared.topology import EVENT_LOG, EVENTS

log = logging.getLogger(__name__)
MARKER = "review.replay_marker"


@dataclass
class ReplayStats:
    read: int = 0
    applied: int = 0
    skipped: int = 0  # about no ticket, or unreadable (those were dead-lettered when they arrived live)
    seconds: float = 0.0
    applying_s: float = 0.0  # of which folding and writing (the rest is reading the stream)
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.read / self.seconds if self.seconds else 0.0


async def _declare(channel: aio_pika.abc.AbstractChannel, settings: Settings) -> aio_pika.abc.AbstractQueue:
    queue = await channel.declare_queue(EVENT_LOG, durable=True, arguments={
        "x-queue-type": "stream", "x-max-age": settings.event_log_max_age,
        "x-max-length-bytes": settings.event_log_max_bytes, "x-stream-max-segment-size-bytes": 100 * 1024**2})
    exchange = await channel.declare_exchange(EVENTS.name, aio_pika.ExchangeType.TOPIC, durable=True)
    await queue.bind(exchange, routing_key="#")
    return queue


async def _mark(channel: aio_pika.abc.AbstractChannel, user: str) -> str:
    marker = CloudEvent(id=str(uuid.uuid4()), source="/helpdesk/review", type=MARKER, time=datetime.now(UTC),
                        data={"purpose": "rebuild"})
    await channel.default_exchange.publish(
        aio_pika.Message(marker.to_bytes(), message_id=marker.id, content_type=CONTENT_TYPE, user_id=user,
                         delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=EVENT_LOG)
    return marker.id


def _read(body: bytes, stats: ReplayStats) -> usecases.Incoming | CloudEvent | None:
    try:
        event = CloudEvent.from_bytes(body)
        if event.type == MARKER:
            return event
        return usecases.understand(event)
    except (DomainError, ValueError) as exc:
        if len(stats.errors) < 20:
            stats.errors.append(str(exc)[:200])
        return None


async def replay(settings: Settings, pool: asyncpg.Pool, business: BusinessTime | None, *, batch: int = 1000
                 ) -> ReplayStats:
    """Fold every event of the stream, from its first offset up to a marker published now. Reading and
    writing overlap: batches are folded and committed in order while the next are read; each batch's
    messages are acked (``multiple``) after its commit, and the broker sends at most five batches ahead
    (the channel's prefetch). Read with ``basic.consume`` on aiormq's channel: no aio-pika message
    object per event (the replay is bound by reading, see the README)."""
    stats = ReplayStats()
    started = time.perf_counter()
    policy = trust.Trust(trust.users_for(settings), publisher=trust.url_user(settings.amqp_url))
    batches: asyncio.Queue[tuple[list[usecases.Incoming], int] | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    reached: asyncio.Future[None] = loop.create_future()

    async def writer(raw: Any) -> None:
        while (item := await batches.get()) is not None:
            events, last_tag = item
            t0 = time.perf_counter()
            stats.applied += await _apply(pool, events, business)
            stats.applying_s += time.perf_counter() - t0
            await raw.basic_ack(last_tag, multiple=True)

    conn = await aio_pika.connect(settings.amqp_url)
    task: asyncio.Task | None = None
    try:
        channel = await conn.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=batch * 5)
        await _declare(channel, settings)
        marker = await _mark(channel, unquote(urlsplit(settings.amqp_url).username or "guest"))
        raw = await channel.get_underlay_channel()
        task = asyncio.create_task(writer(raw))
        pending: list[usecases.Incoming] = []
        unsettled = 0  # read since the last hand-over: refused and skipped ones too, so every read is acked

        async def on_message(msg: Any) -> None:
            # never awaits: each delivery's task runs to its end in delivery order, so batches keep it
            nonlocal pending, unsettled
            if reached.done():
                return  # beyond the marker: left unacked, back to the stream when the channel closes
            unsettled += 1
            props = msg.header.properties
            # access: only what the source's own broker user published (shared.trust), as live
            refused = policy.refusal(EVENTS.name, msg.delivery.routing_key or "", props.user_id, msg.body)
            item = None if refused and props.message_id != marker else _read(msg.body, stats)
            is_marker = isinstance(item, CloudEvent) and item.type == MARKER
            done = is_marker and item.id == marker
            if isinstance(item, usecases.Incoming):
                pending.append(item)
            elif not is_marker:
                stats.skipped += 1
            if not is_marker:
                stats.read += 1
            if unsettled >= batch or done:
                batches.put_nowait((pending, msg.delivery.delivery_tag))
                pending, unsettled = [], 0
            if done:
                batches.put_nowait(None)
                reached.set_result(None)

        ok = await raw.basic_consume(EVENT_LOG, on_message, arguments={"x-stream-offset": "first"})
        await asyncio.wait({reached, task}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # the writer failed: raise its error
            raise RuntimeError("the replay's writer stopped before the marker")
        await task
        with contextlib.suppress(Exception):
            await raw.basic_cancel(ok.consumer_tag)
    finally:
        if task is not None:
            task.cancel()
        await conn.close()
    stats.seconds = time.perf_counter() - started
    return stats


async def _apply(pool: asyncpg.Pool, events: list[usecases.Incoming], business: BusinessTime | None) -> int:
    if not events:
        return 0
    async with pool.acquire() as conn, conn.transaction():
        return await usecases.apply_events(conn, events, business)
