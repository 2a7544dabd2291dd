"""Inbound wire models: the intake message channels publish, and the commands agents send.

Both arrive over AMQP (``helpdesk.intake`` / ``helpdesk.commands``) and HTTP (intake service);
one model serves both so the two paths can never disagree.
"""

from __future__ import annotations

import unicodedata
from datetime import date
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, field_validator

CHANNELS = ("phone", "chat", "email", "app", "wechat", "web", "onsite")
Channel = Literal["phone", "chat", "email", "app", "wechat", "web", "onsite"]
Priority = Literal["P1", "P2", "P3", "P4"]
Outcome = Literal["resolved", "partial", "unresolved"]
TICKET_NO_PATTERN = r"^\d{8}\d{6,}$"

# Every text and list field of a wire model has a bound (tests/privacy/test_limits.py walks them all):
# free text 10,000 characters, names and ids 200, lists MAX_LIST_ITEMS unless a field says less.
MAX_LIST_ITEMS = 100
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10_000)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10_000)]


def _nfkc(value: object) -> object:
    """Full-width digits and signs (``１３８``, ``＋８６``) as their ASCII selves, before the pattern."""
    return unicodedata.normalize("NFKC", value) if isinstance(value, str) else value


Phone = Annotated[str, StringConstraints(strip_whitespace=True, max_length=32, pattern=r"^(?:\+|\(\+?)?[0-9][0-9 ().\-]{4,24}$"),
                  BeforeValidator(_nfkc)]
Email = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
]
TicketNo = Annotated[str, StringConstraints(max_length=40, pattern=TICKET_NO_PATTERN)]
# records (#14)
ServiceType = Literal["repair", "replace", "return", "exchange", "consult", "other"]
Cause = Literal["hardware", "software", "operation", "quality", "logistics", "other"]
StepName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=64, pattern=r"^[a-z][a-z0-9_]{0,63}$")]


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
    involved_staff: Annotated[list[ShortText], Field(max_length=20)] | ShortText | None = None
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
    # records (#14): the service order as the seeds keep it (all optional)
    expected_by: AwareDatetime | None = None  # the customer's own expected resolution time
    product_model: ShortText | None = None
    purchase_date: date | None = None  # the invoice / purchase date: the warranty runs from it
    invoice_no: ShortText | None = None
    service_type: ServiceType | None = None

    # the document says what check_intake enforces: a subject or a description
    model_config = ConfigDict(json_schema_extra={"anyOf": [
        {"required": ["subject"], "properties": {"subject": {"type": "string", "pattern": r"\S", "maxLength": 200}}},
        {"required": ["description"],
         "properties": {"description": {"type": "string", "pattern": r"\S", "maxLength": 10_000}}},
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
    late_reason: LongText | None = None  # why the first-response standard was missed (records)


class ProgressTicket(Command):
    note: LongText
    visible_to_customer: bool = False
    # A promised time told to the customer (implies visible_to_customer); sla runs an ``eta`` clock to it.
    eta: AwareDatetime | None = None
    step: StepName | None = None  # the step of the category's sequence now reached (sla step clocks)


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
    cause: Cause | None = None  # when no ticket.diagnose came first
    sub_item: ShortText | None = None

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


# ---- records (#14): diagnosis, appointment, complaint verification and determination, follow-up call ----
# Each ``XFields`` is the action's own body (the HTTP route's schema adds actor / command_id);
# ``XTicket`` is the command as it travels on helpdesk.commands.


class DiagnoseFields(Wire):
    result: LongText  # 检测结果
    cause: Cause
    sub_item: ShortText | None = None  # e.g. "power module"
    responsibility: Literal["product_quality", "human_damage", "natural_wear", "unknown"] | None = None


class ScheduleFields(Wire):
    appointment_at: AwareDatetime
    place: ShortText  # personal: masked in events and the ticket view
    note: LongText | None = None


class VerifyFields(Wire):
    method: Literal["call_recording", "cctv", "records", "on_site", "other"]
    findings: LongText


class DetermineFields(Wire):
    responsibility: Literal["internal", "customer_misunderstanding", "third_party"]
    department: ShortText | None = None  # required when internal
    remedy: Literal["apology", "coupon", "refund", "redo", "other"]
    amount: Annotated[float, Field(ge=0, le=10_000_000, allow_inf_nan=False)] | None = None  # yuan
    customer_accepted: bool | None = None


class RevisitFields(Wire):
    outcome: LongText
    satisfied: bool


class DiagnoseTicket(Command, DiagnoseFields):
    """The diagnosis (检测结果): result, cause and sub-item, who is responsible."""


class ScheduleTicket(Command, ScheduleFields):
    """An on-site appointment: when and where."""


class VerifyTicket(Command, VerifyFields):
    """A complaint checked: how (call recording, CCTV, records) and what was found."""


class DetermineTicket(Command, DetermineFields):
    """A complaint decided: responsibility (internal names the department), remedy, amount."""


class RevisitTicket(Command, RevisitFields):
    """The follow-up call (回访) after resolution."""


RECORDS_COMMANDS: dict[str, tuple[type[Command], type[Wire]]] = {
    "diagnose": (DiagnoseTicket, DiagnoseFields),
    "schedule": (ScheduleTicket, ScheduleFields),
    "verify": (VerifyTicket, VerifyFields),
    "determine": (DetermineTicket, DetermineFields),
    "revisit": (RevisitTicket, RevisitFields),
}

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
    **{action: models[0] for action, models in RECORDS_COMMANDS.items()},
}


# ---- personal data (privacy): ``customer.erase`` on helpdesk.commands, POST /v1/customers/{key}/erase ----

CustomerKey = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$", max_length=64)]


class EraseCustomer(Wire):
    """Erase a customer's contacts and name everywhere (idempotent); the tickets' facts stay."""

    customer_key: CustomerKey
    actor: ShortText
    command_id: ShortText | None = None
