"""Notification's message handler: decode the event, plan its deliveries, wake the worker.
Errors decide the ack (``shared.consumer``): a malformed event is dead-lettered with its reason."""

from __future__ import annotations

from faststream.rabbit.message import RabbitMessage

from services.notification import privacy, usecases
from services.notification.config import RulesConfig
from services.notification.worker import Worker
from shared.batching import decode_batch, decoded
from shared.envelope import CloudEvent
from shared.errors import DomainError
from shared.events import EVENT_MODELS
from shared.runtime import Runtime
from shared.unit import Tx


ABOUT_NO_TICKET = {"review.published"}  # the monthly review: about a period (subject), not a ticket


def _event(msg: RabbitMessage) -> CloudEvent:
    return CloudEvent.from_bytes(msg.body)


def build(rt: Runtime, cfg: RulesConfig, worker: Worker):
    async def on_event(msg: RabbitMessage, tx: Tx | None) -> None:
        """A ticket, SLA or survey event: the rules file decides who hears of it on which channel;
        the deliveries are stored (one per event, recipient and channel) and sent by the delivery
        worker, which publishes ``notification.sent`` / ``notification.failed``."""
        event = decoded(msg, tx, _event)
        model = EVENT_MODELS.get(event.type)
        if model is not None:
            model.model_validate(event.data)
        if not event.ticket_no and event.type not in ABOUT_NO_TICKET:
            raise DomainError("data.ticket_no", "required")
        await usecases.plan_event(rt, event=event, cfg=cfg, now=worker.clock(), wake=worker.wake, within=tx)

    async def prepare(msgs: list[RabbitMessage], tx: Tx) -> None:
        """A batch's events decoded once (kept for their handlers), their tickets' facts locked (the rows
        their facts would create made) in one statement."""
        await usecases.prepare(tx, decode_batch(msgs, tx, _event))

    return on_event, prepare


def build_customers(rt: Runtime, worker: Worker):
    async def on_customer_erased(msg: RabbitMessage, tx: Tx | None) -> None:
        """``customer.erased`` (only the customer_key): the customer id goes from this schema's ticket
        facts, the delivery contexts keep only facts, pending customer messages are cancelled."""
        event = CloudEvent.from_bytes(msg.body)
        await privacy.on_customer_erased(rt, event=event, now=worker.clock(), within=tx)

    return on_customer_erased
