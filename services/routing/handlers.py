"""Routing's message handlers: decode the event, call the use case. Errors decide the ack
(``shared.consumer``): an event routing cannot understand is dead-lettered with its reason; a
database failure, or an event about a ticket not seen yet, is retried."""

from __future__ import annotations

import asyncio

from faststream.rabbit.message import RabbitMessage

from services.routing.usecases import assign, escalate
from services.routing.config import RuleSet
from shared.batching import decode_batch, decoded
from shared.envelope import CloudEvent
from shared.errors import DomainError
from shared.runtime import Runtime
from shared.unit import Tx

TICKET_KEYS = ["ticket.created", "ticket.reprioritized", "ticket.reopened", "ticket.resolved", "ticket.closed",
               "ticket.escalation_requested", "ticket.diagnosed"]
SIGNAL_KEYS = list(escalate.SIGNALS)


def _event(msg: RabbitMessage, allowed: list[str]) -> CloudEvent:
    event = CloudEvent.from_bytes(msg.body)
    if event.type not in allowed:
        raise DomainError("type", f"routing does not handle {event.type!r} here; expected one of {', '.join(allowed)}")
    if not event.ticket_no:
        raise DomainError("data.ticket_no", "Field required")
    return event


def build(rt: Runtime, rules: RuleSet, ready: asyncio.Event):
    """``ready`` is set once the configuration is in the database (consumers start a moment before)."""

    def ticket_event(msg: RabbitMessage) -> CloudEvent:
        return _event(msg, TICKET_KEYS)

    async def prepare(msgs: list[RabbitMessage], tx: Tx) -> None:
        """A batch's events decoded once (kept for their handlers) and its new tickets inserted in one
        statement (``assign.prepare_created``); an event that does not decode is left to its handler."""
        if not ready.is_set():
            await asyncio.wait_for(ready.wait(), 30)
        await assign.prepare_created(rules, decode_batch(msgs, tx, ticket_event), tx)

    async def on_ticket(msg: RabbitMessage, tx: Tx | None) -> None:
        """Ticket lifecycle events: ``ticket.created`` is classified, prioritised and assigned
        (``ticket.routed``); ``ticket.reprioritized`` / ``ticket.reopened`` re-route it;
        ``ticket.resolved`` / ``ticket.closed`` free the assignee's slot for the oldest queued ticket;
        ``ticket.escalation_requested`` becomes ``ticket.escalated``."""
        event = decoded(msg, tx, ticket_event)
        if not ready.is_set():  # (a wait_for is a task of its own per message)
            await asyncio.wait_for(ready.wait(), 30)
        match event.type:
            case "ticket.created":
                await assign.route_created(rt, rules, event, within=tx)
            case "ticket.reprioritized":
                await assign.reprioritize(rt, event, within=tx)
            case "ticket.reopened":
                await assign.reopen(rt, rules, event, within=tx)
            case "ticket.resolved" | "ticket.closed":
                await assign.release(rt, event, within=tx)
            case "ticket.escalation_requested":
                await assign.request_escalation(rt, rules, event, within=tx)
            case "ticket.diagnosed":
                await assign.diagnosed(rt, rules, event, within=tx)

    async def on_signal(msg: RabbitMessage, tx: Tx | None) -> None:
        """``sla.warning`` -> the assignee's lead; ``sla.breached`` -> the department supervisor, then the
        manager; ``survey.negative`` -> the manager (call back within the hour): ``ticket.escalated``."""
        event = _event(msg, SIGNAL_KEYS)
        if not ready.is_set():  # (a wait_for is a task of its own per message)
            await asyncio.wait_for(ready.wait(), 30)
        await escalate.on_signal(rt, rules, event, within=tx)

    return on_ticket, on_signal, prepare
