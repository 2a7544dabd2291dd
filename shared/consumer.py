"""Consumers: each queue consumed with aio-pika directly (its own channel), errors deciding the ack.

* handler returns                  -> ack (it has committed)
* ``DomainError`` / ``ValidationError`` -> republished to ``helpdesk.dlx`` with the reason in the
  ``x-helpdesk-reason`` header, then acked: a poison message never blocks its queue
* anything else (database or broker trouble) -> nack with requeue after a short backoff; on the last
  delivery the queue's limit allows it is dead-lettered here (masked) with the last error as reason
* every dead letter's body and reason are masked (phones, emails, ID and card numbers)

Consumption costs little per message: ``basic.consume`` on the aiormq channel beneath aio-pika's robust
channel (consumed again when that channel is restored after a reconnect, or when the broker cancels
the consumer), no aio-pika message object or second task per delivery, no decoder, middleware or
dependency resolution; a batch of
deliveries that committed together is acked with one ``basic.ack(multiple=True)``; the Prometheus
consumer metrics are counted per batch. FastStream still holds the subscriptions for the AsyncAPI
document (``Runtime.spec``), never started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
import aiormq
from faststream.rabbit import RabbitBroker, RabbitExchange, RabbitQueue
from prometheus_client import Counter, Gauge, Histogram
from pydantic import ValidationError

from shared import trust
from shared.batching import Batcher, Batching
from shared.deadletters import mask_body
from shared.errors import DomainError
from shared.masking import mask_text
from shared.topology import DLX, REASON_HEADER

log = logging.getLogger(__name__)

Handler = Callable[[Any, Any], Awaitable[None]]  # (the Delivery, the batch's Tx or None)

CONSUMED = Counter(
    "helpdesk_messages_consumed_total", "Messages consumed by outcome", ["service", "queue", "outcome"]
)
SECONDS = Histogram(
    "helpdesk_consumer_seconds", "Arrival to settlement of a delivery (its batch's commit and ack)",
    ["service", "queue"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
IN_PROCESS = Gauge("helpdesk_consumer_in_process", "Deliveries taken and not yet settled", ["service", "queue"])


def validation_reason(exc: ValidationError) -> str:
    """``customer.name: Field required; urgency: Input should be 'urgent', 'normal' or 'low'``."""
    parts = []
    for err in exc.errors(include_url=False):
        field = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{field}: {err['msg']}")
    return "; ".join(parts)


def error_reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return validation_reason(exc)
    return str(exc)


class Delivery:
    """A delivery as handlers read it, made straight from aiormq's frame (no aio-pika message object,
    no second task per delivery): ``body``, ``headers``, ``routing_key``, ``message_id``, ``user_id``,
    ``exchange``, ``content_type``; ``ack``/``nack`` on the channel it came on. ``raw_message`` is the
    delivery itself (the name handlers and the batcher read)."""

    __slots__ = ("body", "headers", "routing_key", "message_id", "user_id", "exchange", "content_type",
                 "delivery_tag", "_channel")

    def __init__(self, message: aiormq.abc.DeliveredMessage) -> None:
        props = message.header.properties
        self.body, self.headers = message.body, props.headers or {}
        self.message_id, self.user_id, self.content_type = props.message_id, props.user_id, props.content_type
        deliver = message.delivery
        self.routing_key, self.exchange, self.delivery_tag = deliver.routing_key, deliver.exchange, deliver.delivery_tag
        self._channel = message.channel

    @property
    def raw_message(self) -> Delivery:
        return self

    async def ack(self, multiple: bool = False) -> None:
        await self._channel.basic_ack(self.delivery_tag, multiple=multiple)

    async def nack(self, requeue: bool = True) -> None:
        await self._channel.basic_nack(self.delivery_tag, requeue=requeue)


async def dead_letter(broker: RabbitBroker, msg: Delivery, *, queue: str, reason: str) -> None:
    """Publish ``msg`` to ``helpdesk.dlx`` under its routing key, with the reason in headers; body and
    reason with every contact masked (``shared.deadletters.mask_body``)."""
    raw = msg.raw_message
    headers = dict(raw.headers or {})
    headers.update({
        REASON_HEADER: mask_text(reason)[:2000],
        "x-helpdesk-queue": queue,
        "x-original-exchange": raw.exchange or "",
        "x-original-routing-key": raw.routing_key or "",
    })
    await broker.publish(
        mask_body(raw.body), exchange=DLX, routing_key=raw.routing_key or queue, persist=True, mandatory=False,
        headers=headers, message_id=raw.message_id, content_type=raw.content_type,
    )


def untrusted(broker: RabbitBroker, exchange: RabbitExchange, msg: Any) -> str | None:
    """Why the publisher of ``msg`` may not send it (``shared.trust``); ``None`` when it may."""
    policy = trust.of(broker)
    if policy is None:
        return None
    raw = msg.raw_message
    return policy.refusal(exchange.name, raw.routing_key or "", raw.user_id, raw.body)


class Consumer:
    """One queue's consumer: ``start(connection)`` opens its channel and consumes; ``stop()`` cancels."""

    def __init__(self, broker: RabbitBroker, queue: RabbitQueue, exchange: RabbitExchange, handler: Handler, *,
                 service: str, batch: Batching | None = None, prefetch: int = 64) -> None:
        self.broker, self.queue, self.exchange, self.handler = broker, queue, exchange, handler
        self.service, self.prefetch = service, prefetch
        name = queue.name
        self._ok, self._retried, self._dead = (CONSUMED.labels(service, name, o)
                                               for o in ("ok", "retried", "dead_lettered"))
        self._seconds = SECONDS.labels(service, name)
        self._in_process = IN_PROCESS.labels(service, name)
        # One ack for a whole committed batch is safe when batches run one at a time: every earlier
        # delivery of this channel is settled by then (in arrival order, by the same runner).
        self._multiple = bool(batch and batch.parallel == 1)
        self._limit = int((queue.arguments or {}).get("x-delivery-limit") or 0)
        self.batcher = (Batcher(batch, handler, committed=self._committed, alone=self._alone, service=service,
                                queue=name) if batch else None)
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._queue: aio_pika.abc.AbstractQueue | None = None
        self._tag: str | None = None
        self._raw: aiormq.abc.AbstractChannel | None = None
        self._stopping = False
        self._recovering: asyncio.Task[None] | None = None
        self._busy = 0
        self._idle = asyncio.Event()

    async def start(self, connection: aio_pika.abc.AbstractConnection) -> None:
        self._channel = await connection.channel()
        await self._channel.set_qos(prefetch_count=self.prefetch)
        self._queue = await self._channel.declare_queue(self.queue.name, durable=True,
                                                        arguments=self.queue.arguments)
        await self._queue.bind(self.exchange.name, routing_key=self.queue.routing_key)
        await self._consume()
        reopened = getattr(self._channel, "reopen_callbacks", None)  # a robust channel, after a reconnect
        if reopened is not None:
            reopened.add(self._consume_again)

    async def _consume(self) -> None:
        """``basic.consume`` on the channel's aiormq channel: each delivery straight to ``_on_message``."""
        assert self._channel is not None
        raw = await self._channel.get_underlay_channel()
        if raw is not self._raw:
            raw.on_consumer_cancel_callbacks.add(self._on_cancel)
        ok = await raw.basic_consume(self.queue.name, self._on_delivered)
        self._raw, self._tag = raw, ok.consumer_tag

    def _on_cancel(self, frame: aiormq.spec.Basic.Cancel) -> None:
        """The broker cancelled the consumer (its queue was deleted, or moved): declare it and consume
        again, every second until it works (or the service stops)."""
        if frame.consumer_tag != self._tag or self._stopping:
            return
        log.warning("consumer cancelled by the broker; consuming again", extra={"queue": self.queue.name})
        self._tag = None
        task = asyncio.get_running_loop().create_task(self._recover())
        self._recovering = task  # a reference, so the task is not collected

    async def _recover(self) -> None:
        while not self._stopping and self._channel is not None and self._tag is None:
            await asyncio.sleep(1.0)
            try:
                self._queue = await self._channel.declare_queue(self.queue.name, durable=True,
                                                                arguments=self.queue.arguments)
                await self._queue.bind(self.exchange.name, routing_key=self.queue.routing_key)
                await self._consume()
            except Exception as exc:  # noqa: BLE001 - tried again in a second
                log.warning("could not consume again", extra={"queue": self.queue.name, "error": repr(exc)})

    async def _consume_again(self, *_: Any) -> None:
        # The robust channel re-declared its queues on a new aiormq channel; consume there again.
        if self._channel is not None and not self._stopping:
            await self._consume()

    async def stop(self, grace_s: float = 15.0) -> None:
        """Stop taking deliveries, let those in hand settle (at most ``grace_s``), close the channel
        (anything still unsettled goes back to the queue)."""
        if self._channel is None or self._channel.is_closed:
            return
        self._stopping = True
        with contextlib.suppress(Exception):
            if self._raw is not None and self._tag is not None:
                await self._raw.basic_cancel(self._tag)
        if self._busy:
            self._idle.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), grace_s)
        with contextlib.suppress(Exception):
            await self._channel.close()
        self._channel = None

    async def _on_delivered(self, message: aiormq.abc.DeliveredMessage) -> None:
        await self._on_message(Delivery(message))

    async def _on_message(self, msg: Delivery) -> None:
        self._busy += 1
        self._in_process.inc()
        started = time.perf_counter()
        try:
            if reason := untrusted(self.broker, self.exchange, msg):
                await self._refuse(msg, reason)
                return
            await (self.batcher.submit(msg) if self.batcher else self._alone(msg))
        finally:
            self._busy -= 1
            if not self._busy:
                self._idle.set()
            self._in_process.dec()
            self._seconds.observe(time.perf_counter() - started)

    async def _refuse(self, msg: Delivery, reason: str) -> None:
        """A message its publisher may not send (``shared.trust``): dead-lettered with the reason, acked."""
        log.warning("dead-lettering untrusted message", extra={"queue": self.queue.name, "reason": reason})
        await dead_letter(self.broker, msg, queue=self.queue.name, reason=reason)
        await msg.raw_message.ack()
        self._dead.inc()

    async def _committed(self, msgs: list[Delivery]) -> None:
        """A batch committed: acked (one frame when safe), counted once."""
        if self._multiple:
            await msgs[-1].raw_message.ack(multiple=True)
        else:
            for m in msgs:
                await m.raw_message.ack()
        self._ok.inc(len(msgs))

    async def _alone(self, msg: Delivery) -> None:
        queue = self.queue.name
        try:
            await self.handler(msg, None)
        except (DomainError, ValidationError, UnicodeDecodeError, ValueError) as exc:
            reason = error_reason(exc)
            log.warning("dead-lettering message", extra={"queue": queue, "reason": reason})
            await dead_letter(self.broker, msg, queue=queue, reason=reason)
            await msg.raw_message.ack()
            self._dead.inc()
        except Exception as exc:  # noqa: BLE001 - infrastructure trouble: retried
            attempt = int((msg.raw_message.headers or {}).get("x-delivery-count") or 0)
            if self._limit and attempt + 1 >= self._limit:
                # The last delivery the queue allows: dead-letter it here, masked, rather than let the
                # broker dead-letter the raw body (the queue's limit stays as the backstop for crashes).
                reason = f"delivery_limit: failed {attempt + 1} time(s), last error: {exc!r}"
                log.warning("dead-lettering message", extra={"queue": queue, "reason": reason})
                await dead_letter(self.broker, msg, queue=queue, reason=reason)
                await msg.raw_message.ack()
                self._dead.inc()
                return
            log.warning("message failed, will retry", extra={"queue": queue, "error": repr(exc),
                                                             "attempt": attempt + 1})
            await asyncio.sleep(min(0.2 * 2**attempt, 5.0))
            await msg.raw_message.nack(requeue=True)
            self._retried.inc()
        else:
            await msg.raw_message.ack()
            self._ok.inc()


def subscribe(rt: Any, queue: RabbitQueue, exchange: RabbitExchange, handler: Handler, *,
              batch: Batching | None = None) -> Consumer:
    """Consume ``queue`` (bound to ``exchange``) with ``handler(msg, tx)``: ``msg`` a :class:`Delivery`,
    ``tx`` the batch's ``shared.unit.Tx`` or ``None`` when handled alone; the ack rules above. ``rt`` is
    the service's ``Runtime``: it starts the consumer after the topology is declared.

    With ``batch``, deliveries waiting together are handled in one transaction (``shared.batching``);
    a batch that fails hands each of its messages to the per-message path, alone.
    """
    consumer = Consumer(rt.broker, queue, exchange, handler, service=rt.service, batch=batch,
                        prefetch=rt.settings.prefetch)
    rt.consumers.append(consumer)

    async def documented(msg: Any) -> None:  # the AsyncAPI document's entry; never started
        raise NotImplementedError

    documented.__name__, documented.__qualname__ = handler.__name__, handler.__qualname__
    documented.__doc__ = handler.__doc__
    rt.spec.subscriber(queue, exchange, description=handler.__doc__)(documented)
    return consumer
