"""The customer's progress page, pure: whether a link still opens, what the customer may see of the
ticket's timeline (masked, never internal notes), the current step and its promised time, and the
rules for what the customer may do (add information, ask for a call back, confirm the outcome).

No I/O: the use cases (``progress.py``) feed rows, events and the clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.errors import Conflict, DomainError
from shared.masking import mask_text

TOKEN_BYTES = 32  # HMAC-SHA256 output: 256 bits, base64url without padding (43 characters)
SALT_BYTES = 16
MAX_TEXT = 2000  # characters of a customer's reply or "not solved" words
LANGUAGES = ("zh-CN", "en")


# ---- the link: an unguessable token, derived (HMAC) from a per-ticket random salt ----

def new_salt() -> bytes:
    return secrets.token_bytes(SALT_BYTES)


def make_token(secret: str, salt: bytes, ticket_no: str) -> str:
    """The link's token: base64url(HMAC-SHA256(secret, salt || ticket_no)). Intake stores only the salt
    and ``token_hash(token)``: a copy of the database alone yields no working link."""
    mac = hmac.new(secret.encode(), salt + ticket_no.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def plausible_token(token: str) -> bool:
    """Shape check before any lookup (43 base64url characters)."""
    return len(token) == 43 and all(c.isalnum() or c in "-_" for c in token)


# ---- whether the page opens ----

def link_state(ticket: Mapping[str, Any] | None, *, now: datetime, ttl: timedelta) -> str:
    """``unknown`` (404), ``expired`` (410: closed more than ``ttl`` ago) or ``open``."""
    if ticket is None:
        return "unknown"
    closed = ticket.get("closed_at")
    if ticket.get("status") == "closed" and closed is not None and now > closed + ttl:
        return "expired"
    return "open"


# ---- what the customer sees ----

@dataclass(frozen=True)
class Item:
    """One line of the customer-visible timeline."""

    kind: str  # received | reply | progress | waiting | you | callback | appointment | resolved | reopened |
    #            confirmed | closed
    at: datetime
    text: str | None = None
    eta: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _text(value: Any) -> str | None:
    return mask_text(str(value)) if value not in (None, "") else None


def _when(value: Any, fallback: datetime) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value)
    return fallback


def visible_item(etype: str, data: Mapping[str, Any], time: datetime) -> Item | None:
    """The customer's view of one event, or None for what they must not see (routing, internal notes,
    SLA, escalations, notifications)."""
    at = _when(data.get("at"), time)
    match etype:
        case "ticket.created":
            return Item("received", _when(data.get("received_at"), time), _text(data.get("subject")))
        case "ticket.responded":
            return Item("reply", at, _text(data.get("message")))
        case "ticket.progressed" if data.get("visible_to_customer"):
            eta = data.get("eta")
            return Item("progress", at, _text(data.get("note")), _when(eta, time) if eta else None)
        case "ticket.waiting":
            return Item("waiting", at, _text(data.get("reason")))
        case "ticket.customer_replied":
            return Item("you", at, _text(data.get("text")))
        case "ticket.escalation_requested" if data.get("actor") == "customer":
            return Item("callback", at)
        case "ticket.scheduled":  # an appointment (records' command)
            when = data.get("appointment_at")
            return Item("appointment", at, _text(data.get("place")), extra={
                "appointment_at": _when(when, time) if when else None})
        case "ticket.resolved":
            return Item("resolved", at, _text(data.get("solution")), extra={"outcome": data.get("outcome")})
        case "ticket.reopened":
            words = data.get("reason") if data.get("actor") == "customer" else None  # an agent's reason is internal
            return Item("reopened", at, _text(words), extra={"by_customer": data.get("actor") == "customer"})
        case "ticket.confirmed":
            return Item("confirmed", at)
        case "ticket.closed":
            return Item("closed", at)
    return None


def visible_timeline(events: Sequence[Mapping[str, Any]]) -> list[Item]:
    """Newest first, only what the customer may see."""
    items = [i for e in events if (i := visible_item(e["type"], e["data"], e["time"])) is not None]
    return sorted(items, key=lambda i: i.at, reverse=True)


@dataclass(frozen=True)
class Promise:
    """The current step, when it is promised to be done, and when the whole ticket is expected done."""

    step: str  # received | assigned | handling | waiting | appointment | resolved | closed
    step_due: datetime | None
    resolution_due: datetime | None
    eta: datetime | None


def _due(sla: Mapping[str, Mapping[str, Any]], metric: str) -> datetime | None:
    state = sla.get(metric) or {}
    if state.get("state") in ("running", "warning", "breached") and state.get("due_at"):
        return _when(state["due_at"], datetime.min)
    return None


def current_eta(events: Sequence[Mapping[str, Any]]) -> datetime | None:
    """The latest promise told to the customer since the ticket was last (re)opened or resolved."""
    eta = None
    for e in events:
        if e["type"] == "ticket.progressed" and e["data"].get("eta"):
            eta = _when(e["data"]["eta"], e["time"])
        elif e["type"] in ("ticket.resolved", "ticket.reopened", "ticket.closed"):
            eta = None
    return eta


def promise(status: str, events: Sequence[Mapping[str, Any]], sla: Mapping[str, Mapping[str, Any]],
            *, now: datetime) -> Promise:
    eta = current_eta(events)
    resolution = eta or _due(sla, "resolution")
    if status in ("resolved", "closed"):
        return Promise(status, None, None, None)
    if status == "waiting":
        return Promise("waiting", None, resolution, eta)
    appointment = _next_appointment(events, now)
    if appointment is not None:
        return Promise("appointment", appointment, resolution, eta)
    if status in ("new", "assigned"):
        return Promise("received" if status == "new" else "assigned", _due(sla, "first_response"), resolution, eta)
    return Promise("handling", eta or _due(sla, "resolution"), resolution, eta)


def _next_appointment(events: Sequence[Mapping[str, Any]], now: datetime) -> datetime | None:
    times = [_when(e["data"].get("appointment_at"), now) for e in events
             if e["type"] == "ticket.scheduled" and e["data"].get("appointment_at")]
    upcoming = [t for t in times if t >= now]
    return min(upcoming) if upcoming else None


# ---- what the customer may do ----

def clean_text(field_name: str, value: Any, *, required: bool) -> str | None:
    """A reply's text: trimmed, 1..MAX_TEXT characters (``DomainError`` naming the field, a 422)."""
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        if required:
            raise DomainError(field_name, "required: please write something")
        return None
    if len(text) > MAX_TEXT:
        raise DomainError(field_name, f"at most {MAX_TEXT} characters ({len(text)} given)")
    return text


def can_reply(status: str) -> None:
    if status == "closed":
        raise Conflict("status", "the ticket is closed; please contact us to open a new one")


def can_confirm(status: str, resolved_at: datetime | None, confirmed_for: datetime | None) -> None:
    """Only a resolved ticket is confirmed, once per resolution (a second answer is a 409)."""
    if confirmed_for is not None and resolved_at is not None and confirmed_for == resolved_at:
        raise Conflict("confirmed", "the outcome has already been confirmed")
    if status != "resolved" or resolved_at is None:
        raise Conflict("status", f"there is no resolution to confirm (the ticket is {status})")


def parse_solved(value: Any) -> bool:
    if value in (True, "yes", "true", "1"):
        return True
    if value in (False, "no", "false", "0"):
        return False
    raise DomainError("solved", "required: yes or no")


@dataclass(frozen=True)
class Window:
    """The link's write budget: ``count`` writes since ``start``."""

    start: datetime | None
    count: int


def spend(window: Window, *, now: datetime, limit: int, span: timedelta) -> Window:
    """One more write, or ``TooMany`` when the link used its budget in the current window."""
    if window.start is None or now - window.start >= span:
        return Window(now, 1)
    if window.count >= limit:
        raise TooMany("token", f"at most {limit} actions per {int(span.total_seconds() // 60)} min; try later")
    return Window(window.start, window.count + 1)


def callback_allowed(last: datetime | None, *, now: datetime, every: timedelta) -> None:
    if last is not None and now - last < every:
        raise TooMany("callback", "a call back was already requested; we will call you")


class TooMany(DomainError):
    status = 429
