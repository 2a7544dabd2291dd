"""Intake's pure rules: ticket numbers, the lifecycle state machine, first-contact resolution."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from shared.errors import Conflict, DomainError
from shared.events import (
    EventData, MaskedCustomer, TicketClosed, TicketEscalationRequested, TicketProgressed, TicketReopened,
    TicketReprioritized, TicketResolved, TicketResponded, TicketResumed, TicketWaiting,
)
from shared.customers import customer_key as keyed_hash
from shared.masking import mask_email, mask_identifier, mask_name, mask_phone
from shared.messages import (
    CloseTicket, Command, Customer, EscalateTicket, IntakeTicket, ProgressTicket, ReopenTicket, ReprioritizeTicket,
    ResolveTicket, RespondTicket, ResumeTicket, WaitTicket,
)

STATUSES = ("new", "assigned", "in_progress", "waiting", "resolved", "closed")
OPEN = ("new", "assigned", "in_progress", "waiting")
MAX_CLOCK_SKEW = timedelta(minutes=5)

# action -> (statuses it is allowed from, status after it; None keeps the status)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "respond": (OPEN, "in_progress"),
    "progress": (OPEN, None),
    "wait": (("new", "assigned", "in_progress"), "waiting"),
    "resume": (("waiting",), "in_progress"),
    "escalate": (OPEN, None),
    "resolve": (OPEN, "resolved"),
    "reopen": (("resolved",), "in_progress"),
    "close": (OPEN + ("resolved",), "closed"),
    "reprioritize": (OPEN, None),
    # records (#14); verify / determine are for complaints only (records_domain.check_allowed)
    "diagnose": (OPEN, None),
    "schedule": (OPEN, None),
    "verify": (OPEN, None),
    "determine": (OPEN, None),
    "revisit": (("resolved",), None),  # closed stays terminal: the follow-up call comes before archiving
}


def ticket_number(day: date, serial: int) -> str:
    """``YYYYMMDD`` + six-digit daily serial: ``20261123000001``."""
    if serial < 1:
        raise ValueError("serial starts at 1")
    return f"{day:%Y%m%d}{serial:06d}"


def numbering_day(now: datetime, tz: ZoneInfo) -> date:
    """The day a ticket is numbered under: the intake moment's date in ``HELPDESK_TZ``."""
    return now.astimezone(tz).date()


def check_intake(msg: IntakeTicket, *, now: datetime) -> datetime:
    """Rules beyond field types; returns the ticket's ``received_at`` (default: now)."""
    if not msg.subject and not msg.description:
        raise DomainError("subject", "at least one of subject / description is required")
    received = msg.received_at or now
    if received - now > MAX_CLOCK_SKEW:
        raise DomainError("received_at", "is in the future")
    return received


def next_status(status: str, action: str) -> str:
    """The status after ``action``, or ``Conflict`` naming why it is impossible now."""
    allowed, after = TRANSITIONS[action]
    if status not in allowed:
        raise Conflict("status", f"cannot {action} a ticket that is {status}")
    if action == "respond" and status == "waiting":
        return "waiting"  # replying while waiting on the customer does not stop the wait
    return after or status


def masked_customer(customer: Customer) -> MaskedCustomer:
    """The customer as events show it: the name as ``李*``, phone and email masked, an id that is a
    contact masked too (events live on in subscribers and the event log beyond any retention here)."""
    return MaskedCustomer(
        name=mask_name(customer.name) or "*", id=mask_identifier(customer.id), phone=mask_phone(customer.phone),
        email=mask_email(customer.email), tier=customer.tier, language=customer.language,
    )


def customer_key(customer: Customer, secret: str) -> str | None:
    """The contract's ``customer_key``: HMAC of the normalised phone, else the email, else the id."""
    return keyed_hash(secret=secret, phone=customer.phone, email=customer.email, customer_id=customer.id)


@dataclass(frozen=True)
class Handling:
    """What intake knows of how a ticket was handled, for the first-contact rule."""

    responses: int
    escalated: bool
    reopened: int
    first_assignee: str | None
    assignee: str | None


def is_first_contact(h: Handling, *, outcome: str, actor: str) -> bool:
    """Contract: resolved (outcome ``resolved``) for the first time, with at most one agent response
    before it, by its first assignee, never escalated and never reopened."""
    if outcome != "resolved" or h.reopened or h.escalated or h.responses > 1:
        return False
    if h.first_assignee is None:
        return True  # never assigned: whoever handled it first resolved it
    return h.assignee == h.first_assignee and actor == h.first_assignee


def decide(action: str, ticket: Mapping[str, Any], cmd: Command, now: datetime) -> tuple[dict[str, Any], EventData]:
    """What ``cmd`` changes on ``ticket`` and the event it causes (status handled by ``next_status``)."""
    actor = cmd.actor
    match cmd:
        case RespondTicket():
            first = ticket["responses"] == 0
            changes: dict[str, Any] = {"responses": ticket["responses"] + 1}
            if first:
                changes["first_response_at"] = now
            return changes, TicketResponded(actor=actor, at=now, first=first, message=cmd.message, via=cmd.via)
        case ProgressTicket():
            if cmd.eta is not None and cmd.eta <= now:
                raise DomainError("eta", "must be in the future (a promise to the customer)")
            return {}, TicketProgressed(actor=actor, at=now, note=cmd.note, eta=cmd.eta,
                                        visible_to_customer=cmd.visible_to_customer or cmd.eta is not None)
        case WaitTicket():
            return {"waiting_since": now}, TicketWaiting(actor=actor, at=now, reason=cmd.reason)
        case ResumeTicket():
            since = ticket["waiting_since"] or now
            return {"waiting_since": None}, TicketResumed(actor=actor, at=now,
                                                          waited_s=max(0.0, (now - since).total_seconds()))
        case EscalateTicket():
            return {"escalated": True}, TicketEscalationRequested(
                actor=actor, at=now, reason=cmd.reason, to=cmd.to, department=cmd.department, eta=cmd.eta)
        case ResolveTicket():
            handling = Handling(responses=ticket["responses"], escalated=ticket["escalated"],
                                reopened=ticket["reopened"], first_assignee=ticket["first_assignee"],
                                assignee=ticket["assignee"])
            fc = is_first_contact(handling, outcome=cmd.outcome, actor=actor)
            changes = {"outcome": cmd.outcome, "first_contact": fc, "resolved_at": now, "waiting_since": None}
            return changes, TicketResolved(
                outcome=cmd.outcome, solution=cmd.solution, actor=actor, at=now, first_contact=fc,
                complaint=ticket["complaint"] is not None, priority=ticket["priority"], category=ticket["category"])
        case ReopenTicket():
            changes = {"reopened": ticket["reopened"] + 1, "outcome": None, "first_contact": None,
                       "resolved_at": None}
            return changes, TicketReopened(actor=actor, at=now, reason=cmd.reason)
        case CloseTicket():
            return {"closed_at": now, "waiting_since": None}, TicketClosed(actor=actor, at=now, reason=cmd.reason)
        case ReprioritizeTicket():
            return {"priority": cmd.priority}, TicketReprioritized(
                actor=actor, at=now, priority=cmd.priority, previous=ticket["priority"], reason=cmd.reason)
    raise DomainError("action", f"unknown action {action!r}")


def sla_state(events: list[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per SLA metric, the latest state the SLA service reported (from the ticket's timeline)."""
    states = {"sla.started": "running", "sla.warning": "warning", "sla.breached": "breached", "sla.met": "met"}
    out: dict[str, dict[str, Any]] = {}
    for e in events:
        if e["type"] in states:
            data = e["data"]
            key = f"step:{data['step']}" if data.get("step") else data["metric"]  # records: one entry per step
            current = out.setdefault(key, {})
            if current.get("state") in ("met",) and e["type"] != "sla.started":
                continue
            current.update({"state": states[e["type"]], "due_at": data.get("due_at"), "policy":
                            data.get("policy", current.get("policy"))})
            for key in ("breached_at", "met_at", "remaining_s", "business_seconds"):
                if key in data:
                    current[key] = data[key]
    return out


def masked_customer_from_row(t: Mapping[str, Any]) -> dict[str, Any]:
    return {"name": t["customer_name"], "id": mask_identifier(t["customer_id"]),
            "phone": mask_phone(t["customer_phone"]),
            "email": mask_email(t["customer_email"]), "tier": t["customer_tier"],
            "language": t["customer_language"]}
