"""Broker topology: the four contract exchanges, the dead-letter queue, quorum queue factory."""

from __future__ import annotations

from typing import Any

from faststream.rabbit import ExchangeType, QueueType, RabbitBroker, RabbitExchange, RabbitQueue

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


def dead_letter_queue() -> RabbitQueue:
    return RabbitQueue(DEAD_LETTER_QUEUE, queue_type=QueueType.QUORUM, durable=True, routing_key="#")


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


async def declare_all(broker: RabbitBroker, settings: Any = None) -> None:
    """Declare what no subscriber declares: every exchange, the dead-letter queue bound to ``#``, and
    the event log stream bound to ``helpdesk.events`` with ``#`` (so it holds every event from the
    first one on, whichever service starts first)."""
    for exchange in EXCHANGES:
        await broker.declare_exchange(exchange)
    dlq = await broker.declare_queue(dead_letter_queue())
    await dlq.bind(DLX.name, routing_key="#")
    log_args = {} if settings is None else {"max_age": settings.event_log_max_age,
                                            "max_bytes": settings.event_log_max_bytes}
    stream = await broker.declare_queue(event_log_queue(**log_args))
    await stream.bind(EVENTS.name, routing_key="#")


async def bind(broker: RabbitBroker, queue: RabbitQueue, exchange: RabbitExchange, keys: list[str]) -> None:
    """Bind ``queue`` to further routing keys (a FastStream subscriber binds only one)."""
    declared = await broker.declare_queue(queue)
    await broker.declare_exchange(exchange)
    for key in keys:
        await declared.bind(exchange.name, routing_key=key)
