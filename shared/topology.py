"""Broker topology: the four contract exchanges, the dead-letter queue, quorum queue factory."""

from __future__ import annotations

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


async def declare_all(broker: RabbitBroker) -> None:
    """Declare what no subscriber declares: every exchange, and the dead-letter queue bound to ``#``."""
    for exchange in EXCHANGES:
        await broker.declare_exchange(exchange)
    dlq = await broker.declare_queue(dead_letter_queue())
    await dlq.bind(DLX.name, routing_key="#")


async def bind(broker: RabbitBroker, queue: RabbitQueue, exchange: RabbitExchange, keys: list[str]) -> None:
    """Bind ``queue`` to further routing keys (a FastStream subscriber binds only one)."""
    declared = await broker.declare_queue(queue)
    await broker.declare_exchange(exchange)
    for key in keys:
        await declared.bind(exchange.name, routing_key=key)
