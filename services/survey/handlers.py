"""Survey's message handlers: decode the event, call the use case. Errors decide the ack
(``shared.consumer``): a malformed event is dead-lettered with its reason, a failure is retried."""

from __future__ import annotations

from datetime import UTC, datetime

from faststream.rabbit.message import RabbitMessage

from services.survey import privacy, usecases
from services.survey.usecases import Policy
from shared.envelope import CloudEvent
from shared.errors import DomainError
from shared.runtime import Runtime
from shared.unit import Tx


def build(rt: Runtime, policy: Policy):
    async def on_ticket(msg: RabbitMessage, tx: Tx | None) -> None:
        """Ticket lifecycle events the survey acts on: ``ticket.created`` (the customer and language,
        a complaint joins the customer's history), ``ticket.resolved`` (a survey, sent after the
        configured delay as ``survey.sent``), ``ticket.reopened`` (a pending or unanswered survey is
        withdrawn: ``survey.cancelled``)."""
        event = CloudEvent.from_bytes(msg.body)
        if not event.ticket_no:
            raise DomainError("data.ticket_no", "missing")
        now = datetime.now(UTC)
        if event.type == "ticket.created":
            await usecases.record_ticket(rt, event=event, within=tx)
        elif event.type == "ticket.resolved":
            await usecases.schedule(rt, policy, event=event, now=now, within=tx)
        elif event.type == "ticket.reopened":
            await usecases.cancel_on_reopen(rt, event=event, now=now, within=tx)
        else:
            raise DomainError("type", f"survey does not consume {event.type}")

    return on_ticket


def build_customers(rt: Runtime):
    async def on_customer_erased(msg: RabbitMessage, tx: Tx | None) -> None:
        """``customer.erased`` (only the customer_key): the customer's survey comments are erased;
        scores and complaint history by key stay (facts for the reviews)."""
        await privacy.on_customer_erased(rt, event=CloudEvent.from_bytes(msg.body), now=datetime.now(UTC),
                                         within=tx)

    return on_customer_erased
