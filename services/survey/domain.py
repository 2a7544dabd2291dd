"""Survey's pure rules: when to send, remind and expire; what an answer means; who is a repeat
complainant. No I/O here (no faststream, no asyncpg)."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StringConstraints

from shared.errors import Conflict, DomainError, NotFound
from shared.masking import mask_text

LANGUAGES = ("zh-CN", "en")
DEFAULT_LANGUAGE = "zh-CN"
SATISFIED_MIN = 4  # contract: satisfied = overall >= 4
NEGATIVE_MAX = 2  # overall <= 2 (dissatisfied / very dissatisfied) asks for a manager's call-back
CALLBACK_WITHIN_S = 3600  # DOMAIN §5: the after-sales manager calls back within 1 hour
LIVE = ("scheduled", "sent")
Step = Literal["send", "remind", "expire"]


class Gone(DomainError):
    """The survey link no longer takes answers (expired, or withdrawn because the ticket reopened)."""

    status = 410


# ---- timing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    delay_s: float = 0.0
    complaint_delay_s: float | None = None
    reminder_after_s: float = 2 * 86_400.0
    expire_after_s: float = 7 * 86_400.0

    def send_at(self, resolved_at: datetime, *, complaint: bool) -> datetime:
        """When the survey goes out: resolution + delay (complaints may have their own delay)."""
        delay = self.complaint_delay_s if complaint and self.complaint_delay_s is not None else self.delay_s
        return resolved_at + timedelta(seconds=delay)

    def after_send(self, sent_at: datetime) -> tuple[datetime | None, datetime]:
        """``(remind_at, expires_at)`` for a survey sent at ``sent_at``; no reminder when it would
        not come before expiry."""
        expire, remind = timedelta(seconds=self.expire_after_s), timedelta(seconds=self.reminder_after_s)
        if remind <= timedelta(0) or remind >= expire:  # compared as timedeltas: microsecond resolution
            return None, sent_at + expire
        return sent_at + remind, sent_at + expire


def due_at(row: Mapping[str, Any]) -> datetime | None:
    """The next moment the scheduler must act on a survey row, or None when nothing is left."""
    if row["status"] == "scheduled":
        return row["send_at"]
    if row["status"] == "sent":
        if row["remind_at"] is not None and row["reminded_at"] is None:
            return min(row["remind_at"], row["expires_at"])
        return row["expires_at"]
    return None


def next_step(row: Mapping[str, Any], now: datetime) -> Step | None:
    """What is due on the row at ``now`` (one step; the scheduler re-plans after each)."""
    if row["status"] == "scheduled":
        return "send" if row["send_at"] <= now else None
    if row["status"] != "sent":
        return None
    if row["expires_at"] <= now:
        return "expire"
    if row["remind_at"] is not None and row["reminded_at"] is None and row["remind_at"] <= now:
        return "remind"
    return None


def check_answerable(row: Mapping[str, Any] | None, now: datetime) -> None:
    """Raise the error a client sees when this survey cannot take an answer now."""
    if row is None or row["status"] == "scheduled":
        raise NotFound("token", "no such survey")
    if row["status"] == "answered":
        raise Conflict("token", "this survey has already been answered")
    if row["status"] == "cancelled":
        raise Gone("token", "this survey was withdrawn because the ticket was reopened")
    if row["status"] == "expired" or (row["expires_at"] is not None and row["expires_at"] <= now):
        raise Gone("token", "this survey has expired")


def page_state(row: Mapping[str, Any] | None, now: datetime) -> str:
    """Which page a link shows: ``form``, ``answered``, ``expired``, ``cancelled`` or ``unknown``."""
    try:
        check_answerable(row, now)
    except NotFound:
        return "unknown"
    except Conflict:
        return "answered"
    except Gone:
        return "cancelled" if row is not None and row["status"] == "cancelled" else "expired"
    return "form"


# ---- one ticket's events, in whatever order they are handled ------------------------------------


def on_resolution(*, seq: int, reopened_seq: int, live_seq: int | None) -> Literal["create", "supersede", "skip"]:
    """What a ``ticket.resolved`` with intake ``seq`` does: ``skip`` when a later reopen already undid
    it or a later resolution already has the live survey; ``supersede`` (withdraw the live survey of an
    earlier resolution, then create) or ``create``."""
    if seq < reopened_seq or (live_seq is not None and live_seq >= seq):
        return "skip"
    return "create" if live_seq is None else "supersede"


def reopen_withdraws(*, seq: int, live_seq: int | None) -> bool:
    """A ``ticket.reopened`` withdraws the live survey only when it belongs to an earlier resolution."""
    return live_seq is not None and live_seq < seq


# ---- tokens and links ---------------------------------------------------------------------------


def new_token() -> str:
    """192 random bits, URL-safe; never one the PII masking would alter on the way out."""
    while True:
        token = secrets.token_urlsafe(24)
        if mask_text(token) == token:
            return token


def survey_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/s/{token}"


def language(value: str | None) -> str:
    """The survey's language: the customer's (``zh-CN`` / ``en``, ``en-US`` counts as ``en``)."""
    if value:
        if value in LANGUAGES:
            return value
        if value.lower().startswith("en"):
            return "en"
    return DEFAULT_LANGUAGE


def customer_key(customer: Mapping[str, Any] | None) -> str | None:
    """Whose history a ticket joins: the channel's customer id when given, else the masked phone,
    else the masked email (the only contact details the survey service ever sees)."""
    if not customer:
        return None
    for field, prefix in (("id", "id"), ("phone", "phone"), ("email", "email")):
        value = customer.get(field)
        if value:
            return f"{prefix}:{str(value).strip().lower() if field == 'email' else str(value).strip()}"
    return None


# ---- answers ------------------------------------------------------------------------------------

Score = Annotated[StrictInt, Field(ge=1, le=5)]
Comment = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]


class SurveyAnswer(BaseModel):
    """The contract's answer body: ``{"resolved", "speed", "attitude", "overall", "comment"}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    resolved: StrictBool
    speed: Score
    attitude: Score
    overall: Score
    comment: Comment | None = None


@dataclass(frozen=True)
class Verdict:
    satisfied: bool
    negative: bool
    reasons: tuple[str, ...]

    def reason_text(self, answer: SurveyAnswer) -> str:
        parts = []
        if "unresolved" in self.reasons:
            parts.append("customer says the problem is not resolved")
        if "dissatisfied" in self.reasons:
            parts.append(f"overall satisfaction {answer.overall}/5")
        text = "; ".join(parts)
        return f"{text}: {answer.comment}" if answer.comment else text


def judge(answer: SurveyAnswer) -> Verdict:
    """Satisfied = overall >= 4; negative = not resolved, or overall <= 2."""
    reasons = []
    if not answer.resolved:
        reasons.append("unresolved")
    if answer.overall <= NEGATIVE_MAX:
        reasons.append("dissatisfied")
    return Verdict(satisfied=answer.overall >= SATISFIED_MIN, negative=bool(reasons), reasons=tuple(reasons))


_YES = {"yes", "true", "1", "on"}
_NO = {"no", "false", "0", "off"}


def form_to_body(form: Mapping[str, list[str]]) -> dict[str, Any]:
    """The page's form (``resolved=yes&speed=4&...``) as the contract's JSON body; what cannot be
    converted is passed on as is, so validation names the field."""
    body: dict[str, Any] = {}
    for name, values in form.items():
        value = values[-1] if values else ""
        if name == "resolved":
            low = value.strip().lower()
            body[name] = True if low in _YES else False if low in _NO else value
        elif name in ("speed", "attitude", "overall"):
            body[name] = int(value) if value.strip().isdigit() else value
        elif name == "comment":
            body[name] = value or None
        # other names (the submit button, ``lang``) are not answers
    return body


# ---- repeat complainants ------------------------------------------------------------------------


def is_repeat(history: Iterable[tuple[str, datetime]], now: datetime, *, window_days: int = 30) -> bool:
    """A customer is a repeat complainant when, within the window before ``now``, at least two
    different tickets of theirs carried a complaint or a negative survey (a complaint ticket whose
    survey is also negative counts once)."""
    since = now - timedelta(days=window_days)
    return len({ticket for ticket, at in history if at >= since}) >= 2
