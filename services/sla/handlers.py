"""The SLA service's message handler: decode the event, apply it to the ticket's clocks. Errors decide
the ack (``shared.consumer``): an unknown ticket, an unknown type or an impossible order (an event
dated before the ticket was received) is dead-lettered with its reason; a failure is retried, and so is
an intake event that overtook an earlier one of its ticket (intake's per-ticket ``seq``) until the
last delivery, which dead-letters it naming the missing ``seq``."""

from __future__ import annotations

from faststream.rabbit.message import RabbitMessage

from services.sla import usecases
from services.sla.lifecycle import Reactor
from shared.batching import decode_batch, decoded
from shared.envelope import CloudEvent
from shared.runtime import Runtime
from shared.unit import Tx


def _event(msg: RabbitMessage) -> CloudEvent:
    return CloudEvent.from_bytes(msg.body)


def build(rt: Runtime, reactor: Reactor):
    async def on_ticket_event(msg: RabbitMessage, tx: Tx | None) -> None:
        """Ticket lifecycle events (``ticket.*``) and ``survey.negative`` start, pause, resume,
        re-target and stop the ticket's SLA clocks; announcements go out as ``sla.started``,
        ``sla.warning``, ``sla.breached`` and ``sla.met``."""
        attempt = int((msg.raw_message.headers or {}).get("x-delivery-count") or 0)
        event = decoded(msg, tx, _event)
        await usecases.apply_event(rt, reactor, event, last_try=attempt + 1 >= rt.settings.delivery_limit,
                                   within=tx)

    async def prepare(msgs: list[RabbitMessage], tx: Tx) -> None:
        """A batch's events decoded once (kept for their handlers), their tickets and clocks locked in
        two statements."""
        await usecases.prepare(tx, reactor, decode_batch(msgs, tx, _event))

    return on_ticket_event, prepare
