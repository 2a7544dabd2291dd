"""Inbound wire models: the intake message channels publish, and the commands agents send.

Both arrive over AMQP (``helpdesk.intake`` / ``helpdesk.commands``) and HTTP (intake service);
one model serves both so the two paths can never disagree.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, StringConstraints, field_validator

CHANNELS = ("phone", "chat", "email", "app", "wechat", "web", "onsite")
Channel = Literal["phone", "chat", "email", "app", "wechat", "web", "onsite"]
Priority = Literal["P1", "P2", "P3", "P4"]
Outcome = Literal["resolved", "partial", "unresolved"]
TICKET_NO_PATTERN = r"^\d{8}\d{6,}$"

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10_000)]


def _nfkc(value: object) -> object:
    """Full-width digits and signs (``１３８``, ``＋８６``) as their ASCII selves, before the pattern."""
    return unicodedata.normalize("NFKC", value) if isinstance(value, str) else value


Phone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^(?:\+|\(\+?)?[0-9][0-9 ().\-]{4,24}$"),
                  BeforeValidator(_nfkc)]
Email = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
]
TicketNo = Annotated[str, StringConstraints(pattern=TICKET_NO_PATTERN)]


def _iso_only(value: object) -> object:
    """A timestamp is an ISO 8601 string (pydantic would take a number as Unix seconds)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError("must be an ISO 8601 date-time string with a UTC offset")
    return value


IsoDatetime = Annotated[AwareDatetime, BeforeValidator(_iso_only)]


class Wire(BaseModel):
    """Inbound models refuse unknown fields, so a typo is an error naming the field."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Customer(Wire):
    name: ShortText
    id: ShortText | None = None
    phone: Phone | None = None
    email: Email | None = None
    tier: Literal["vip", "standard"] = "standard"
    language: Literal["zh-CN", "en"] | None = None


class Complaint(Wire):
    type: Literal["attitude", "efficiency", "solution", "quality", "other"]
    involved_staff: list[ShortText] | ShortText | None = None
    demand: LongText | None = None


class IntakeTicket(Wire):
    """A customer problem from any channel (contract: "Intake message")."""

    channel: Channel
    external_id: ShortText | None = None
    customer: Customer
    subject: ShortText | None = None
    description: LongText | None = None
    kind: ShortText | None = None
    urgency: Literal["urgent", "normal", "low"] = "normal"
    impact: Literal["single", "batch"] = "single"
    order_no: ShortText | None = None
    product: ShortText | None = None
    received_at: IsoDatetime | None = None
    complaint: Complaint | None = None

    # the document says what check_intake enforces: a subject or a description
    model_config = ConfigDict(json_schema_extra={"anyOf": [
        {"required": ["subject"], "properties": {"subject": {"type": "string", "pattern": r"\S"}}},
        {"required": ["description"], "properties": {"description": {"type": "string", "pattern": r"\S"}}},
    ]})


# ---- commands (routing key ``ticket.<action>``; HTTP ``POST /v1/tickets/{no}/{action}``) ----

_VAGUE = {"handled", "done", "ok", "fixed", "solved", "resolved", "已处理", "处理完毕", "已解决", "完成"}


class Command(Wire):
    ticket_no: TicketNo
    actor: ShortText
    command_id: ShortText | None = None


class RespondTicket(Command):
    """An agent's reply to the customer; the first one is the ticket's first response."""

    message: LongText | None = None
    via: Literal["phone", "chat", "email", "app", "wechat", "web", "onsite", "sms"] | None = None


class ProgressTicket(Command):
    note: LongText
    visible_to_customer: bool = False
    # A promised time told to the customer (implies visible_to_customer); sla runs an ``eta`` clock to it.
    eta: AwareDatetime | None = None


class WaitTicket(Command):
    reason: LongText | None = None


class ResumeTicket(Command):
    note: LongText | None = None


class EscalateTicket(Command):
    reason: LongText
    to: ShortText | None = None
    department: ShortText | None = None
    eta: IsoDatetime | None = None


class ResolveTicket(Command):
    outcome: Outcome
    solution: LongText

    @field_validator("solution")
    @classmethod
    def _concrete_solution(cls, value: str) -> str:
        if value.strip().lower().rstrip(".。!！") in _VAGUE:
            raise ValueError("must say concretely what was done (e.g. 'replaced power module PWR-01')")
        return value


class ReopenTicket(Command):
    reason: LongText


class CloseTicket(Command):
    reason: LongText | None = None


class ReprioritizeTicket(Command):
    priority: Priority
    reason: LongText


COMMANDS: dict[str, type[Command]] = {
    "respond": RespondTicket,
    "progress": ProgressTicket,
    "wait": WaitTicket,
    "resume": ResumeTicket,
    "escalate": EscalateTicket,
    "resolve": ResolveTicket,
    "reopen": ReopenTicket,
    "close": CloseTicket,
    "reprioritize": ReprioritizeTicket,
}
