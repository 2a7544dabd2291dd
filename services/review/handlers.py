"""Review's message handler: decode the event, fold it into its ticket's fact. Errors decide the ack
(``shared.consumer``): an event that cannot be understood is dead-lettered with its reason."""

from __future__ import annotations

from faststream.rabbit.message import RabbitMessage

from services.review import usecases
from services.review.domain import BusinessTime
from shared.envelope import CloudEvent
from shared.runtime import Runtime
from shared.unit import Tx


def build(rt: Runtime, business: BusinessTime):
    folder = usecases.Folder(business)

    async def on_event(msg: RabbitMessage, tx: Tx | None) -> None:
        """Every event on ``helpdesk.events`` (bound with ``#``): folded into one fact row per ticket,
        idempotent by event id and by (ticket, publisher, seq), right in any arrival order (an event for a
        ticket not seen yet makes a partial fact that later events complete). A body that is not a
        CloudEvent, or a ticket event whose fields cannot be read, is dead-lettered with the reason."""
        await usecases.apply_one(rt, CloudEvent.from_bytes(msg.body), folder, within=tx)

    return on_event
