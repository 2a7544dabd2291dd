"""Broker topology: the four contract exchanges, the dead-letter queue, quorum queue factory."""

from __future__ import annotations

import logging
from typing import Any

import aio_pika
import orjson
from faststream.rabbit import ExchangeType, QueueType, RabbitBroker, RabbitExchange, RabbitQueue

from shared.settings import Settings

log = logging.getLogger(__name__)

INTAKE = RabbitExchange("helpdesk.intake", type=ExchangeType.TOPIC, durable=True)
COMMANDS = RabbitExchange("helpdesk.commands", type=ExchangeType.TOPIC, durable=True)
EVENTS = RabbitExchange("helpdesk.events", type=ExchangeType.TOPIC, durable=True)
DLX = RabbitExchange("helpdesk.dlx", type=ExchangeType.TOPIC, durable=True)
EXCHANGES = (INTAKE, COMMANDS, EVENTS, DLX)

DEAD_LETTER_QUEUE = "helpdesk.dead-letters"
REASON_HEADER = "x-helpdesk-reason"


def quorum_queue(name: str, *, routing_key: str, delivery_limit: int) -> RabbitQueue:
    """A durable quorum queue that dead-letters to ``helpdesk.dlx`` after ``delivery_limit`` tries.

    ``at-least-once`` dead lettering keeps a message until the DLX queue has confirmed it.
    """
    return RabbitQueue(
        name,
        queue_type=QueueType.QUORUM,
        durable=True,
        routing_key=routing_key,
        arguments={
            "x-delivery-limit": delivery_limit,
            "x-dead-letter-exchange": DLX.name,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        },
    )


def dead_letter_arguments(settings: Settings) -> dict[str, Any]:
    """``helpdesk.dead-letters``: a quorum queue whose messages expire after ``HELPDESK_DEAD_LETTER_TTL``
    and that holds at most ``HELPDESK_DEAD_LETTER_MAX`` (over it the oldest is dropped, never a new dead
    letter refused: at-least-once dead lettering would otherwise back up every source queue)."""
    return {
        "x-queue-type": "quorum",
        "x-message-ttl": int(settings.dead_letter_ttl.total_seconds() * 1000),
        "x-max-length": settings.dead_letter_max,
        "x-overflow": "drop-head",
    }


def dead_letter_policy(settings: Settings) -> str:
    """The same limits as a broker policy, for a queue declared before they existed (its arguments
    cannot change in place): ``rabbitmqctl set_policy …``."""
    definition = orjson.dumps({"message-ttl": int(settings.dead_letter_ttl.total_seconds() * 1000),
                               "max-length": settings.dead_letter_max, "overflow": "drop-head"}).decode()
    return f"rabbitmqctl set_policy --apply-to queues helpdesk-dead-letters '^helpdesk\\.dead-letters$' '{definition}'"


async def declare_dead_letter_queue(amqp_url: str, settings: Settings) -> bool:
    """Declare ``helpdesk.dead-letters`` with its TTL and length cap, bound to ``helpdesk.dlx``.

    A queue that already exists with other arguments (declared before the limits, or with other
    values) cannot be changed by redeclaring it: the broker refuses (PRECONDITION_FAILED). It is then
    used as it is and a warning names the policy that puts the limits on it; returns False then.
    Runs on its own short connection, so a refused declaration never closes a channel the service uses.
    """
    conn = await aio_pika.connect(amqp_url)
    async with conn:
        ch = await conn.channel()
        await ch.declare_exchange(DLX.name, aio_pika.ExchangeType.TOPIC, durable=True)
        try:
            queue = await ch.declare_queue(DEAD_LETTER_QUEUE, durable=True, arguments=dead_letter_arguments(settings))
            exact = True
        except aio_pika.exceptions.ChannelPreconditionFailed:
            log.warning("helpdesk.dead-letters exists with other arguments; its TTL and length cap come from a "
                        "policy instead", extra={"policy": dead_letter_policy(settings)})
            ch = await conn.channel()
            queue = await ch.declare_queue(DEAD_LETTER_QUEUE, passive=True)
            exact = False
        await queue.bind(DLX.name, routing_key="#")
        return exact


def _url(broker: RabbitBroker, settings: Settings) -> str:
    """The broker's own URL (tests build brokers for other vhosts than the settings name)."""
    url = (getattr(broker, "_connection_kwargs", None) or {}).get("url")
    return str(url) if url else settings.amqp_url


EVENT_LOG = "helpdesk.events.log"


def event_log_queue(*, max_age: str = "2Y", max_bytes: int = 200 * 1024**3) -> RabbitQueue:
    """The event log: a RabbitMQ stream bound to ``helpdesk.events`` with ``#`` that keeps every event
    for ``max_age`` (``HELPDESK_EVENT_LOG_MAX_AGE``) within ``max_bytes`` (``HELPDESK_EVENT_LOG_MAX_BYTES``).
    Any reader replays it from any offset (``x-stream-offset``: ``first``, a number or a timestamp);
    reading never removes anything. A stream's arguments cannot change once declared."""
    return RabbitQueue(
        EVENT_LOG, queue_type=QueueType.STREAM, durable=True, routing_key="#",
        arguments={"x-max-age": max_age, "x-max-length-bytes": max_bytes,
                   "x-stream-max-segment-size-bytes": 100 * 1024**2},
    )


async def declare_all(broker: RabbitBroker, settings: Settings | None = None) -> None:
    """Declare what no subscriber declares: every exchange, the dead-letter queue bound to ``#`` (with its
    TTL and length cap), and the event log stream bound to ``helpdesk.events`` with ``#`` (so it holds
    every event from the first one on, whichever service starts first)."""
    settings = settings or Settings()
    for exchange in EXCHANGES:
        await broker.declare_exchange(exchange)
    await declare_dead_letter_queue(_url(broker, settings), settings)
    stream = await broker.declare_queue(event_log_queue(max_age=settings.event_log_max_age,
                                                        max_bytes=settings.event_log_max_bytes))
    await stream.bind(EVENTS.name, routing_key="#")




async def bind(broker: RabbitBroker, queue: RabbitQueue, exchange: RabbitExchange, keys: list[str]) -> None:
    """Bind ``queue`` to further routing keys (a FastStream subscriber binds only one)."""
    declared = await broker.declare_queue(queue)
    await broker.declare_exchange(exchange)
    for key in keys:
        await declared.bind(exchange.name, routing_key=key)
