"""Notification's message handler: decode the event, plan its deliveries, wake the worker.
Errors decide the ack (``shared.consumer``): a malformed event is dead-lettered with its reason."""

from __future__ import annotations

from faststream.rabbit.message import RabbitMessage

from services.notification import usecases
from services.notification.config import RulesConfig
from services.notification.worker import Worker
from shared.envelope import CloudEvent
from shared.errors import DomainError
from shared.events import EVENT_MODELS
from shared.runtime import Runtime
from shared.unit import Tx


def build(rt: Runtime, cfg: RulesConfig, worker: Worker):
    async def on_event(msg: RabbitMessage, tx: Tx | None) -> None:
        """A ticket, SLA or survey event: the rules file decides who hears of it on which channel;
        the deliveries are stored (one per event, recipient and channel) and sent by the delivery
        worker, which publishes ``notification.sent`` / ``notification.failed``."""
        event = CloudEvent.from_bytes(msg.body)
        model = EVENT_MODELS.get(event.type)
        if model is not None:
            model.model_validate(event.data)
        if not event.ticket_no:
            raise DomainError("data.ticket_no", "required")
        await usecases.plan_event(rt, event=event, cfg=cfg, now=worker.clock(), wake=worker.wake, within=tx)

    return on_event
