"""Pure rules of the service and complaint records (#14): the new intake fields, the category rules
of the records commands, the complaint rule, and the events the commands cause.

The lifecycle statuses of the new actions are in ``domain.TRANSITIONS``; this module adds what the
status cannot say (``verify`` / ``determine`` only on complaints; no complaint resolved without a
responsibility and a remedy) and enriches the core events (``late`` on ``ticket.responded``,
``cause`` / ``sub_item`` on ``ticket.resolved``, ``step`` on ``ticket.progressed``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from shared.errors import Conflict, DomainError
from shared.events import (
    EventData, TicketDetermined, TicketDiagnosed, TicketProgressed, TicketResolved, TicketResponded, TicketRevisited,
    TicketScheduled, TicketVerified,
)
from shared.messages import (
    Command, DetermineTicket, DiagnoseTicket, IntakeTicket, ProgressTicket, ResolveTicket, RespondTicket,
    RevisitTicket, ScheduleTicket, VerifyTicket,
)

COMPLAINT_CATEGORIES = ("complaint", "attitude")
COMPLAINT_ONLY = ("verify", "determine")
RECORDS_ACTIONS = ("diagnose", "schedule", "verify", "determine", "revisit")


def check_fields(msg: IntakeTicket, *, received_at: datetime, today: date) -> None:
    """The new intake fields beyond their types (a 4xx naming the field)."""
    if msg.expected_by is not None and msg.expected_by <= received_at:
        raise DomainError("expected_by", "must be after the ticket's received_at")
    if msg.purchase_date is not None and msg.purchase_date > today:
        raise DomainError("purchase_date", "is in the future")


def mask_place(place: str | None) -> str | None:
    """An address keeps its first 6 characters (city / district), the rest is starred."""
    if not place:
        return place
    keep = min(6, max(1, len(place) // 2))
    return place[:keep] + "****"


def is_complaint(ticket: Mapping[str, Any]) -> bool:
    return ticket["complaint"] is not None or ticket["category"] in COMPLAINT_CATEGORIES


def check_allowed(action: str, ticket: Mapping[str, Any]) -> None:
    """What the category forbids (the status is checked by ``domain.next_status``): a ``Conflict``."""
    if action in COMPLAINT_ONLY and not is_complaint(ticket):
        raise Conflict("action", f"{action} is for complaints; ticket {ticket['ticket_no']} is "
                                 f"{ticket['category'] or 'unclassified'} without a complaint")


def missing_for_resolve(ticket: Mapping[str, Any], determination: Mapping[str, Any] | None) -> list[str]:
    """What a complaint lacks before it may be resolved (empty: nothing, or not a complaint)."""
    if not is_complaint(ticket):
        return []
    d = determination or {}
    return [k for k in ("responsibility", "remedy") if not d.get(k)]


def check_resolve(ticket: Mapping[str, Any], determination: Mapping[str, Any] | None) -> None:
    if missing := missing_for_resolve(ticket, determination):
        raise Conflict(missing[0], f"a complaint cannot be resolved without a responsibility and a remedy: "
                                   f"missing {', '.join(missing)} (send ticket.determine first)")


def check_determine(cmd: DetermineTicket) -> None:
    if cmd.responsibility == "internal" and not cmd.department:
        raise DomainError("department", "required when responsibility is internal (name the department)")
    if cmd.remedy in ("coupon", "refund") and cmd.amount is None:
        raise DomainError("amount", f"required for remedy {cmd.remedy}")


def decide(action: str, ticket: Mapping[str, Any], cmd: Command, now: datetime) -> tuple[dict[str, Any], EventData]:
    """What a records command changes on ``ticket`` (columns) and the event it causes."""
    actor = cmd.actor
    match cmd:
        case DiagnoseTicket():
            record = {"result": cmd.result, "cause": cmd.cause, "sub_item": cmd.sub_item,
                      "responsibility": cmd.responsibility, "actor": actor, "at": now.isoformat()}
            return {"diagnosis": record, "cause": cmd.cause, "sub_item": cmd.sub_item}, TicketDiagnosed(
                actor=actor, at=now, result=cmd.result, cause=cmd.cause, sub_item=cmd.sub_item,
                responsibility=cmd.responsibility)
        case ScheduleTicket():
            if ticket["received_at"] and cmd.appointment_at < ticket["received_at"]:
                raise DomainError("appointment_at", "is before the ticket was received")
            record = {"appointment_at": cmd.appointment_at.isoformat(), "place": cmd.place, "note": cmd.note,
                      "actor": actor, "at": now.isoformat()}
            return {"appointment": record}, TicketScheduled(
                actor=actor, at=now, appointment_at=cmd.appointment_at, place=mask_place(cmd.place), note=cmd.note)
        case VerifyTicket():
            record = {"method": cmd.method, "findings": cmd.findings, "actor": actor, "at": now.isoformat()}
            return {"verification": record}, TicketVerified(actor=actor, at=now, method=cmd.method,
                                                            findings=cmd.findings)
        case DetermineTicket():
            check_determine(cmd)
            amount = float(cmd.amount) if cmd.amount is not None else None
            record = {"responsibility": cmd.responsibility, "department": cmd.department, "remedy": cmd.remedy,
                      "amount": amount, "customer_accepted": cmd.customer_accepted, "actor": actor,
                      "at": now.isoformat()}
            return {"determination": record}, TicketDetermined(
                actor=actor, at=now, responsibility=cmd.responsibility, department=cmd.department,
                remedy=cmd.remedy, amount=amount, customer_accepted=cmd.customer_accepted)
        case RevisitTicket():
            record = {"outcome": cmd.outcome, "satisfied": cmd.satisfied, "actor": actor, "at": now.isoformat()}
            return {"revisit": record}, TicketRevisited(actor=actor, at=now, outcome=cmd.outcome,
                                                        satisfied=cmd.satisfied)
    raise DomainError("action", f"unknown action {action!r}")


def amend(cmd: Command, ticket: Mapping[str, Any], changes: dict[str, Any], event: EventData, *,
          first_response_late: bool) -> tuple[dict[str, Any], EventData]:
    """The records fields of the core commands' events (``respond``, ``resolve``, ``progress``)."""
    match cmd, event:
        case RespondTicket(), TicketResponded():
            late = event.first and first_response_late
            event = event.model_copy(update={"late": late, "late_reason": cmd.late_reason})
        case ResolveTicket(), TicketResolved():
            cause, sub_item = cmd.cause or ticket["cause"], cmd.sub_item or ticket["sub_item"]
            if cmd.cause:
                changes = {**changes, "cause": cmd.cause, "sub_item": cmd.sub_item}
            event = event.model_copy(update={"cause": cause, "sub_item": sub_item})
        case ProgressTicket(), TicketProgressed():
            event = event.model_copy(update={"step": cmd.step})
    return changes, event


def first_response_late(timeline: list[Mapping[str, Any]], now: datetime) -> bool:
    """Had the first-response clock breached by ``now``? (announced, or its last deadline passed)."""
    due: datetime | None = None
    for e in timeline:
        data = e["data"]
        if data.get("metric") != "first_response":
            continue
        if e["type"] == "sla.breached":
            return True
        if e["type"] == "sla.started" and data.get("due_at"):
            due = datetime.fromisoformat(data["due_at"])
    return due is not None and due < now
