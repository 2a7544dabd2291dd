"""Event payloads (the ``data`` of a CloudEvent) for every type in the contract.

Past-tense, frozen, tolerant of fields they do not know (subscribers must not break when a
publisher adds a field). ``ticket_no`` and ``seq`` are added by the outbox, not set here.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from shared.messages import Channel, Outcome, Priority

Category = Literal[
    "fault", "quality", "consultation", "attitude", "logistics", "return", "refund", "complaint", "suggestion", "other"
]
CATEGORIES: tuple[str, ...] = Category.__args__  # type: ignore[attr-defined]
# eta / next_update: the customer side (issue #15): a promised time kept, regular updates given
SlaMetric = Literal["first_response", "resolution", "callback", "eta", "next_update", "revisit", "step"]


class EventData(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    type: ClassVar[str]

    def payload(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class TicketEvent(EventData):
    """Every event's data as a subscriber reads it: the ticket and its per-ticket sequence."""

    ticket_no: str
    seq: int


class MaskedCustomer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    name: str  # masked: the first character ("李*")
    id: str | None = None  # masked when it carries a phone or email
    phone: str | None = None  # masked
    email: str | None = None  # masked
    tier: str = "standard"
    language: str | None = None


class Warranty(BaseModel):
    """The 三包 check at intake: in warranty or not, what the customer is entitled to, and why."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    in_warranty: bool
    entitlement: Literal["return", "exchange", "repair", "paid"]
    reason: str
    product_line: str | None = None
    warranty_months: int | None = None
    warranty_ends: date | None = None
    days_since_purchase: int | None = None
    failed_repairs: int = 0


class TicketCreated(EventData):
    type = "ticket.created"
    channel: Channel
    external_id: str | None = None  # masked when it carries a phone or email
    customer: MaskedCustomer
    customer_key: str | None = None  # contract: HMAC-SHA256 of the normalised phone / email / id
    subject: str | None = None
    description: str | None = None
    kind: str | None = None
    urgency: str
    impact: str
    order_no: str | None = None
    product: str | None = None
    complaint: dict[str, Any] | None = None
    received_at: datetime
    created_at: datetime
    caller: str | None = None
    # records (#14)
    product_model: str | None = None
    purchase_date: date | None = None
    invoice_no: str | None = None
    service_type: str | None = None
    expected_by: datetime | None = None
    customer_type: Literal["new", "returning"] | None = None
    warranty: Warranty | None = None


class TicketResponded(EventData):
    type = "ticket.responded"
    actor: str
    at: datetime
    first: bool
    message: str | None = None
    via: str | None = None
    late: bool = False  # the first-response clock had breached (records)
    late_reason: str | None = None


class TicketProgressed(EventData):
    type = "ticket.progressed"
    actor: str
    at: datetime
    note: str
    visible_to_customer: bool
    eta: datetime | None = None  # a promise to the customer ("预计24小时内完成维修"): sla times it
    step: str | None = None  # the step of the category's sequence reached (records)


class TicketWaiting(EventData):
    type = "ticket.waiting"
    actor: str
    at: datetime
    reason: str | None = None


class TicketResumed(EventData):
    type = "ticket.resumed"
    actor: str
    at: datetime
    waited_s: float


class TicketEscalationRequested(EventData):
    """An agent asked for escalation; routing decides the target and publishes ``ticket.escalated``."""

    type = "ticket.escalation_requested"
    actor: str
    at: datetime
    reason: str
    to: str | None = None
    department: str | None = None
    eta: datetime | None = None


class TicketResolved(EventData):
    type = "ticket.resolved"
    outcome: Outcome
    solution: str
    actor: str
    at: datetime
    first_contact: bool
    complaint: bool = False
    priority: str | None = None
    category: str | None = None
    cause: str | None = None  # records: from the command, else the diagnosis
    sub_item: str | None = None


class TicketReopened(EventData):
    type = "ticket.reopened"
    actor: str
    at: datetime
    reason: str


class TicketClosed(EventData):
    type = "ticket.closed"
    actor: str
    at: datetime
    reason: str | None = None


class TicketReprioritized(EventData):
    type = "ticket.reprioritized"
    actor: str
    at: datetime
    priority: Priority
    previous: str | None = None
    reason: str


class TicketRouted(EventData):
    type = "ticket.routed"
    category: Category
    priority: Priority
    department: str | None
    assignee: str | None
    rule: str


class TicketEscalated(EventData):
    type = "ticket.escalated"
    level: int
    to: str
    reason: str


class SlaStep(EventData):
    """Step clocks (metric ``step``) name the step and its limit as configured ("24h", "3wd")."""

    step: str | None = None
    limit: str | None = None


class SlaStarted(SlaStep):
    type = "sla.started"
    metric: SlaMetric
    due_at: datetime
    policy: str
    calendar: str | None = None  # the policy's calendar (review counts business durations on it)
    target: Literal["policy", "expected_by"] | None = None  # resolution: which target applied


class SlaWarning(SlaStep):
    type = "sla.warning"
    metric: SlaMetric
    due_at: datetime
    remaining_s: float


class SlaBreached(SlaStep):
    type = "sla.breached"
    metric: SlaMetric
    due_at: datetime
    breached_at: datetime


class SlaMet(SlaStep):
    type = "sla.met"
    metric: SlaMetric
    due_at: datetime
    met_at: datetime
    business_seconds: float


class NotificationSent(EventData):
    type = "notification.sent"
    channel: str
    template: str
    recipient: str
    attempt: int


class NotificationFailed(NotificationSent):
    type = "notification.failed"
    error: str | None = None


class SurveySent(EventData):
    type = "survey.sent"
    survey_id: str
    url: str


class SurveyCompleted(EventData):
    type = "survey.completed"
    survey_id: str
    resolved: bool
    speed: int
    attitude: int
    overall: int
    comment: str | None = None


class SurveyNegative(EventData):
    type = "survey.negative"
    survey_id: str
    reason: str


# ---- records (#14) ----


class TicketDiagnosed(EventData):
    type = "ticket.diagnosed"
    actor: str
    at: datetime
    result: str
    cause: str
    sub_item: str | None = None
    responsibility: str | None = None


class TicketScheduled(EventData):
    type = "ticket.scheduled"
    actor: str
    at: datetime
    appointment_at: datetime
    place: str  # masked
    note: str | None = None


class TicketVerified(EventData):
    type = "ticket.verified"
    actor: str
    at: datetime
    method: str
    findings: str


class TicketDetermined(EventData):
    type = "ticket.determined"
    actor: str
    at: datetime
    responsibility: Literal["internal", "customer_misunderstanding", "third_party"]
    department: str | None = None
    remedy: Literal["apology", "coupon", "refund", "redo", "other"]
    amount: float | None = None
    customer_accepted: bool | None = None


class TicketRevisited(EventData):
    type = "ticket.revisited"
    actor: str
    at: datetime
    outcome: str
    satisfied: bool


RECORDS_EVENTS = (TicketDiagnosed, TicketScheduled, TicketVerified, TicketDetermined, TicketRevisited)

EVENT_MODELS: dict[str, type[EventData]] = {
    m.type: m
    for m in (
        TicketCreated, TicketResponded, TicketProgressed, TicketWaiting, TicketResumed,
        TicketEscalationRequested, TicketResolved, TicketReopened, TicketClosed, TicketReprioritized,
        TicketRouted, TicketEscalated, SlaStarted, SlaWarning, SlaBreached, SlaMet,
        NotificationSent, NotificationFailed, SurveySent, SurveyCompleted, SurveyNegative, *RECORDS_EVENTS,
    )
}


# ---- survey's further events (subscribers read them: notification delivers the reminder) ----
# (A service's richer models of contract events live in services/<service>/events.py.)


class SurveyReminder(EventData):
    """One reminder for an unanswered survey (notification delivers it like ``survey.sent``)."""

    type = "survey.reminder"
    survey_id: str
    url: str
    expires_at: datetime
    language: str | None = None


class SurveyExpired(EventData):
    type = "survey.expired"
    survey_id: str
    sent_at: datetime
    reminded: bool


class SurveyCancelled(EventData):
    """A pending or unanswered survey withdrawn because its ticket was reopened."""

    type = "survey.cancelled"
    survey_id: str
    reason: str
    was_sent: bool


# EVENT_MODELS is what a subscriber validates against: the contract's fields only, so a subscriber
# never rejects an event for lacking a field one publisher adds (the richer models a service
# publishes live in services/<service>/events.py).
EVENT_MODELS.update({m.type: m for m in (SurveyReminder, SurveyExpired, SurveyCancelled)})


# ---- review (appended by the review service) ----


class ReviewPublished(EventData):
    """``review.published`` (source ``/helpdesk/review``): a period's review frozen as a snapshot at
    02:00 on the 1st (``HELPDESK_TZ``). Not about one ticket: ``subject`` is the period, ``data`` has no
    ``ticket_no``/``seq``. ``headline`` holds the headline figures (each ``{value, previous, change}``)."""

    type = "review.published"
    period: str
    previous_period: str | None = None
    url: str
    frozen_at: datetime
    headline: dict[str, Any]
# ---- the customer's side (issue #15): what the customer does on the progress page ----


class TicketCustomerReplied(EventData):
    """The customer added information on the progress page (``text`` masked); a waiting ticket resumes
    (``ticket.resumed`` follows in the same transaction)."""

    type = "ticket.customer_replied"
    actor: str = "customer"
    at: datetime
    text: str


class TicketConfirmed(EventData):
    """The customer confirmed on the progress page that the resolution solved the problem."""

    type = "ticket.confirmed"
    actor: str = "customer"
    at: datetime


EVENT_MODELS.update({m.type: m for m in (TicketCustomerReplied, TicketConfirmed)})


# ---- personal data (privacy) ----


class CustomerErased(EventData):
    """A customer's personal data was erased in intake (``customer.erase``). Only the key: every
    service that holds data about that customer erases its own rows (tickets' facts stay).
    ``data`` has no ``ticket_no`` / ``seq``: it is about a customer, not a ticket."""

    type = "customer.erased"
    customer_key: str


EVENT_MODELS[CustomerErased.type] = CustomerErased
