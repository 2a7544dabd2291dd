"""Intake's message handlers: decode the wire model, call the use case. Errors decide the ack
(``shared.consumer``): a bad message is dead-lettered with its reason, a failure is retried."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from faststream.rabbit.message import RabbitMessage

from services.intake import privacy, usecases
from shared.batching import decode_batch, decoded
from shared.envelope import CloudEvent
from shared.errors import DomainError
from shared.keyed_lock import KeyedLock
from shared.messages import COMMANDS, EraseCustomer, IntakeTicket
from shared.runtime import Runtime
from shared.unit import Tx


def _json(msg: RabbitMessage, max_bytes: int | None = None) -> dict:
    if max_bytes is not None and len(msg.body) > max_bytes:  # the same bound as an HTTP body
        raise DomainError("body", f"larger than {max_bytes} bytes")
    try:
        body = orjson.loads(msg.body)
    except orjson.JSONDecodeError as exc:
        raise DomainError("body", f"malformed JSON: {exc}") from None
    if not isinstance(body, dict):
        raise DomainError("body", "must be a JSON object")
    return body


def build(rt: Runtime):
    in_order = KeyedLock()

    def _ticket(msg: RabbitMessage) -> IntakeTicket:
        body = _json(msg, rt.settings.max_body_bytes)
        key_channel = (msg.raw_message.routing_key or "").removeprefix("intake.")
        body.setdefault("channel", key_channel)
        if body["channel"] != key_channel:
            raise DomainError("channel", f"{body['channel']!r} does not match routing key intake.{key_channel}")
        return IntakeTicket.model_validate(body)

    async def on_intake(msg: RabbitMessage, tx: Tx | None) -> None:
        """A customer problem from a channel gateway (``intake.<channel>``): registered as a ticket
        (idempotent on ``channel`` + ``external_id``) and announced as ``ticket.created``."""
        ticket = decoded(msg, tx, _ticket)
        caller = (msg.headers or {}).get("x-caller") or f"amqp:{ticket.channel}"
        await usecases.create_ticket(rt, tz=rt.settings.tz, msg=ticket, caller=str(caller), transport="amqp",
                                     message_id=msg.raw_message.message_id,
                                     key_secret=rt.settings.customer_key_secret, within=tx)

    async def prepare_intake(msgs: list[RabbitMessage], tx: Tx) -> None:
        """A batch's bodies validated once (kept for their handlers) and its registrations looked up in
        one statement; a body that fails is left to its handler, which refuses it alone."""
        decode_batch(msgs, tx, _ticket)
        items = [(tx.memo[m], m.raw_message.message_id) for m in msgs if m in tx.memo]
        await usecases.prepare(tx, items, tz=rt.settings.tz, key_secret=rt.settings.customer_key_secret)

    async def on_command(msg: RabbitMessage, tx: Tx | None) -> None:
        """An agent's or enterprise system's command (``ticket.<action>``) applied to the ticket's
        lifecycle; an impossible transition is dead-lettered with the reason. Actions: respond, progress
        (optional ``step``), wait, resume, escalate, resolve (optional ``cause``, ``sub_item``; a complaint
        needs a determination first), reopen, close, reprioritize; records: diagnose {result, cause,
        sub_item, responsibility}, schedule {appointment_at, place}, verify {method, findings} and
        determine {responsibility, department, remedy, amount, customer_accepted} (complaints only),
        revisit {outcome, satisfied} (resolved tickets). Every command: ticket_no, actor, command_id.
        ``customer.erase`` erases a customer's contacts and name (idempotent) and announces
        ``customer.erased``."""
        if msg.raw_message.routing_key == "customer.erase":
            erase = EraseCustomer.model_validate(_json(msg, rt.settings.max_body_bytes))
            await privacy.erase_customer(rt, customer_key=erase.customer_key, actor=erase.actor, now=datetime.now(UTC),
                                         message_id=erase.command_id or msg.raw_message.message_id, within=tx)
            return
        action = (msg.raw_message.routing_key or "").removeprefix("ticket.")
        model = COMMANDS.get(action)
        if model is None:
            raise DomainError("routing_key", f"unknown command ticket.{action}")
        cmd = model.model_validate(_json(msg, rt.settings.max_body_bytes))
        caller = (msg.headers or {}).get("x-caller") or "amqp"
        async with in_order.hold(cmd.ticket_no):  # taken before any await: arrival order per ticket
            await usecases.apply_command(rt, action=action, cmd=cmd, caller=str(caller),
                                         message_id=msg.raw_message.message_id, within=tx)

    async def on_event(msg: RabbitMessage, tx: Tx | None) -> None:
        """Every event on ``helpdesk.events`` joins its ticket's timeline (the read model behind
        ``GET /v1/tickets/{no}``); ``ticket.routed`` and ``ticket.escalated`` update the ticket."""
        await usecases.record_event(rt, event=CloudEvent.from_bytes(msg.body), within=tx)

    return on_intake, prepare_intake, on_command, on_event
