"""Subscriber wrapper: errors decide the ack.

* handler returns                  -> ack (it has committed)
* ``DomainError`` / ``ValidationError`` -> republished to ``helpdesk.dlx`` with the reason in the
  ``x-helpdesk-reason`` header, then acked: a poison message never blocks its queue
* anything else (database or broker trouble) -> nack with requeue after a short backoff; on the last
  delivery the queue's limit allows it is dead-lettered here (masked) with the last error as reason
* every dead letter's body and reason are masked (phones, emails, ID and card numbers)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from faststream import AckPolicy
from faststream.rabbit import RabbitBroker, RabbitExchange, RabbitQueue
from faststream.rabbit.message import RabbitMessage as RabbitMessageType
from prometheus_client import Counter
from pydantic import ValidationError

from shared import trust
from shared.batching import Batcher, Batching
from shared.deadletters import mask_body
from shared.errors import DomainError
from shared.masking import mask_text
from shared.topology import DLX, REASON_HEADER

log = logging.getLogger(__name__)

Handler = Callable[[RabbitMessageType, Any], Awaitable[None]]  # (message, the batch's Tx or None)

CONSUMED = Counter(
    "helpdesk_messages_consumed_total", "Messages consumed by outcome", ["service", "queue", "outcome"]
)


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


async def _itself(msg: Any) -> Any:
    """Decoder that hands the handler the message itself: no body decoding, and no per-message
    FastDepends context resolution (which runs in a worker thread) for a ``RabbitMessage`` param."""
    return msg


async def dead_letter(broker: RabbitBroker, msg: RabbitMessageType, *, queue: str, reason: str) -> None:
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


def untrusted(broker: RabbitBroker, exchange: RabbitExchange, msg: RabbitMessageType) -> str | None:
    """Why the publisher of ``msg`` may not send it (``shared.trust``); ``None`` when it may."""
    policy = trust.of(broker)
    if policy is None:
        return None
    raw = msg.raw_message
    return policy.refusal(exchange.name, raw.routing_key or "", raw.user_id, raw.body)


def subscribe(
    broker: RabbitBroker, queue: RabbitQueue, exchange: RabbitExchange, handler: Handler, *, service: str,
    batch: Batching | None = None,
) -> None:
    """Subscribe ``handler(msg, tx)`` (the raw ``RabbitMessage``; the batch's ``shared.unit.Tx``, or
    ``None`` when handled alone) with the ack rules above.

    With ``batch``, deliveries waiting together are handled in one transaction (``shared.batching``);
    a batch that fails hands each of its messages to ``alone``, the per-message path below.
    """

    limit = int((queue.arguments or {}).get("x-delivery-limit") or 0)

    async def acked(msg: Any) -> None:
        await msg.ack()
        CONSUMED.labels(service, queue.name, "ok").inc()

    async def alone(msg: Any) -> None:
        try:
            await handler(msg, None)
        except (DomainError, ValidationError, UnicodeDecodeError, ValueError) as exc:
            reason = error_reason(exc)
            log.warning("dead-lettering message", extra={"queue": queue.name, "reason": reason})
            await dead_letter(broker, msg, queue=queue.name, reason=reason)
            await msg.ack()
            CONSUMED.labels(service, queue.name, "dead_lettered").inc()
        except Exception as exc:  # noqa: BLE001 - infrastructure trouble: retried
            attempt = int((msg.raw_message.headers or {}).get("x-delivery-count") or 0)
            if limit and attempt + 1 >= limit:
                # The last delivery the queue allows: dead-letter it here, masked, rather than let the
                # broker dead-letter the raw body (the queue's limit stays as the backstop for crashes).
                reason = f"delivery_limit: failed {attempt + 1} time(s), last error: {exc!r}"
                log.warning("dead-lettering message", extra={"queue": queue.name, "reason": reason})
                await dead_letter(broker, msg, queue=queue.name, reason=reason)
                await msg.ack()
                CONSUMED.labels(service, queue.name, "dead_lettered").inc()
                return
            log.warning("message failed, will retry", extra={"queue": queue.name, "error": repr(exc),
                                                             "attempt": attempt + 1})
            await asyncio.sleep(min(0.2 * 2**attempt, 5.0))
            await msg.nack(requeue=True)
            CONSUMED.labels(service, queue.name, "retried").inc()
        else:
            await acked(msg)

    batcher = (Batcher(batch, handler, committed=acked, alone=alone, service=service, queue=queue.name)
               if batch else None)

    async def consume(msg: Any) -> None:
        if reason := untrusted(broker, exchange, msg):
            log.warning("dead-lettering untrusted message", extra={"queue": queue.name, "reason": reason})
            await dead_letter(broker, msg, queue=queue.name, reason=reason)
            await msg.ack()
            CONSUMED.labels(service, queue.name, "dead_lettered").inc()
            return
        await (batcher.submit(msg) if batcher else alone(msg))

    for outcome in ("ok", "retried", "dead_lettered"):  # series exist from the start (increase() needs it)
        CONSUMED.labels(service, queue.name, outcome)
    consume.__name__ = handler.__name__
    consume.__qualname__ = handler.__qualname__
    consume.__doc__ = handler.__doc__
    broker.subscriber(
        queue, exchange, ack_policy=AckPolicy.MANUAL, decoder=_itself, description=handler.__doc__
    )(consume)
