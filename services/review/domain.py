"""The fact of one ticket, folded from its events — pure (no faststream, no asyncpg).

``fold(state, event)`` records what an event says **keyed by the publishing service and its
per-ticket seq**, never by arrival: "the first response" is the ``ticket.responded`` with the lowest
intake seq, "the routing" the ``ticket.routed`` with the highest routing seq, and so on. So any arrival
order, and any duplicate, folds to the same state; an event for a ticket not seen yet makes a partial
fact that later events complete. ``derive(state)`` turns the state into the row's typed columns.

Tolerant: fields a publisher adds are ignored, missing optional fields are null; a known event whose
needed fields are missing or of the wrong type raises ``DomainError`` (the consumer dead-letters it).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from shared.errors import DomainError

COMPLAINT_CATEGORIES = ("complaint", "attitude")
State = dict[str, Any]


class _Tolerant(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Created(_Tolerant):
    received_at: datetime
    channel: str | None = None
    customer_key: str | None = None
    complaint: dict[str, Any] | None = None
    kind: str | None = None
    urgency: str | None = None


class Routed(_Tolerant):
    category: str | None = None
    priority: str | None = None
    department: str | None = None
    assignee: str | None = None


class At(_Tolerant):
    at: datetime


class Resolved(_Tolerant):
    at: datetime
    outcome: str | None = None
    actor: str | None = None
    first_contact: bool = False
    cause: str | None = None
    sub_item: str | None = None


class SlaStarted(_Tolerant):
    metric: str
    policy: str | None = None
    calendar: str | None = None


class SlaMet(_Tolerant):
    metric: str
    met_at: datetime
    business_seconds: float | None = None


class SlaBreached(_Tolerant):
    metric: str
    breached_at: datetime


class Survey(_Tolerant):
    survey_id: str
    overall: int | None = None


class Diagnosis(_Tolerant):
    cause: str | None = None
    sub_item: str | None = None
    responsibility: str | None = None
    department: str | None = None


def _parse(model: type[_Tolerant], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        raise DomainError("data." + ".".join(str(p) for p in err["loc"]), err["msg"]) from None


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _key(source: str, seq: int | None, event_id: str) -> str:
    """A per-publisher ordering key: ``<seq zero-padded>`` so string order is seq order."""
    return f"{seq:012d}" if seq is not None else f"~{event_id}"


def _latest(state: State, field: str, key: str, value: dict[str, Any]) -> None:
    """Keep ``value`` under ``field`` when its key is the highest seen (the latest of one publisher)."""
    cur = state.get(field)
    if cur is None or key >= cur["k"]:
        state[field] = {"k": key, **value}


def _earliest(state: State, field: str, key: str, value: dict[str, Any]) -> None:
    cur = state.get(field)
    if cur is None or key <= cur["k"]:
        state[field] = {"k": key, **value}


# ---- what each event type records ----------------------------------------------------------------


def _created(s: State, d: dict[str, Any], k: str) -> None:
    c = _parse(Created, d)
    tier = (d.get("customer") or {}).get("tier") if isinstance(d.get("customer"), dict) else None
    complaint = c.complaint if isinstance(c.complaint, dict) else None
    s["created"] = {"received_at": _iso(c.received_at), "channel": c.channel, "customer_key": c.customer_key,
                    "complaint": complaint is not None,
                    "complaint_type": (complaint or {}).get("type"), "tier": tier}


def _routed(s: State, d: dict[str, Any], k: str) -> None:
    r = _parse(Routed, d)
    _latest(s, "routed", k, r.model_dump())
    _earliest(s, "first_routed", k, {"assignee": r.assignee})
    if r.assignee:
        s.setdefault("assignees", {})[r.assignee] = True


def _responded(s: State, d: dict[str, Any], k: str) -> None:
    _earliest(s, "first_response", k, {"at": _iso(_parse(At, d).at)})


def _resolved(s: State, d: dict[str, Any], k: str) -> None:
    r = _parse(Resolved, d)
    s.setdefault("resolutions", {})[k] = {"at": _iso(r.at), "outcome": r.outcome, "actor": r.actor,
                                          "first_contact": r.first_contact, "cause": r.cause,
                                          "sub_item": r.sub_item}


def _reopened(s: State, d: dict[str, Any], k: str) -> None:
    s.setdefault("reopens", {})[k] = _iso(_parse(At, d).at)


def _closed(s: State, d: dict[str, Any], k: str) -> None:
    _earliest(s, "closed", k, {"at": _iso(_parse(At, d).at)})


def _escalated(s: State, d: dict[str, Any], k: str) -> None:
    s.setdefault("escalations", {})[k] = d.get("level")


def _clock(metric: str, d: dict[str, Any]) -> str:
    """The state key of an SLA clock: its metric; a records ``step`` clock is keyed by the step it names
    (``step:diagnose``), so two steps' clocks never mix. Only ``first_response`` and ``resolution`` count
    in the compliance figures; ``next_update`` (a clock that runs many cycles per ticket) gives only the
    cycle counters ``nu_met`` / ``nu_breached``; the others (revisit, step:*, customer's eta) are kept in
    the state under their own keys and touch no other column."""
    step = d.get("step")
    return f"step:{step}" if metric == "step" and isinstance(step, str) and step else metric


def _sla_started(s: State, d: dict[str, Any], k: str) -> None:
    st = _parse(SlaStarted, d)
    sla = s.setdefault("sla", {}).setdefault(_clock(st.metric, d), {})
    if "started" not in sla or k >= sla["started"]["k"]:
        sla["started"] = {"k": k, "policy": st.policy, "calendar": st.calendar}


def _sla_met(s: State, d: dict[str, Any], k: str) -> None:
    m = _parse(SlaMet, d)
    s.setdefault("sla", {}).setdefault(_clock(m.metric, d), {}).setdefault("met", {})[k] = {
        "at": _iso(m.met_at), "business_seconds": m.business_seconds}


def _sla_breached(s: State, d: dict[str, Any], k: str) -> None:
    b = _parse(SlaBreached, d)
    s.setdefault("sla", {}).setdefault(_clock(b.metric, d), {}).setdefault("breached", {})[k] = _iso(b.breached_at)


def _survey(flag: str) -> Callable[[State, dict[str, Any], str], None]:
    def record(s: State, d: dict[str, Any], k: str) -> None:
        sv = _parse(Survey, d)
        entry = s.setdefault("surveys", {}).setdefault(sv.survey_id, {})
        entry[flag] = True
        if flag == "answered":
            entry["overall"] = sv.overall
    return record


def _diagnosis(field: str) -> Callable[[State, dict[str, Any], str], None]:
    def record(s: State, d: dict[str, Any], k: str) -> None:
        _latest(s, field, k, _parse(Diagnosis, d).model_dump())
    return record


FOLDS: dict[str, Callable[[State, dict[str, Any], str], None]] = {
    "ticket.created": _created,
    "ticket.routed": _routed,
    "ticket.responded": _responded,
    "ticket.resolved": _resolved,
    "ticket.reopened": _reopened,
    "ticket.closed": _closed,
    "ticket.escalated": _escalated,
    "sla.started": _sla_started,
    "sla.met": _sla_met,
    "sla.breached": _sla_breached,
    "survey.sent": _survey("sent"),
    "survey.completed": _survey("answered"),
    "survey.cancelled": _survey("cancelled"),
    "ticket.diagnosed": _diagnosis("diagnosed"),
    "ticket.determined": _diagnosis("determined"),
}


def fold(state: State, *, type: str, source: str, seq: int | None, event_id: str, data: dict[str, Any]) -> State:
    """``state`` with what one event says recorded (a new dict; ``state`` is not changed)."""
    return fold_into(_copy(state), type=type, source=source, seq=seq, event_id=event_id, data=data)


def fold_into(state: State, *, type: str, source: str, seq: int | None, event_id: str, data: dict[str, Any]) -> State:
    """``fold`` that records into ``state`` itself (for a state the caller owns); returns it."""
    record = FOLDS.get(type)
    if record is not None:
        record(state, data, _key(source, seq, event_id))
    return state


def _copy(state: State) -> State:
    return {k: (_copy(v) if isinstance(v, dict) else v) for k, v in state.items()}


# ---- the row's columns ---------------------------------------------------------------------------

BusinessTime = Callable[[str | None, datetime, datetime], float | None]
US = 1_000_000


def _dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def micros(start: datetime | None, end: datetime | None) -> int | None:
    """``end - start`` in whole microseconds (exact), or None when either is unknown."""
    if start is None or end is None:
        return None
    delta = end - start
    return (delta.days * 86400 + delta.seconds) * US + delta.microseconds


def _sla_outcome(clock: dict[str, Any] | None) -> tuple[str | None, float | None]:
    """A clock counts as breached if any ``sla.breached`` was announced, else met if ``sla.met`` was."""
    if not clock:
        return None, None
    met = clock.get("met") or {}
    business = met[min(met)]["business_seconds"] if met else None
    if clock.get("breached"):
        return "breached", business
    return ("met" if met else None), business


def _cycles(clock: dict[str, Any] | None) -> tuple[int, int]:
    """(met, breached) cycles of a many-cycle clock (``next_update``): each ``sla.met`` / ``sla.breached``
    is recorded under its publisher's seq key (event id without one), so a duplicate counts once."""
    clock = clock or {}
    return len(clock.get("met") or {}), len(clock.get("breached") or {})


def _surveys(surveys: dict[str, dict[str, Any]]) -> tuple[int, int, int]:
    """(sent, answered, satisfied): a survey withdrawn unanswered (reopen) was never really sent."""
    sent = answered = satisfied = 0
    for sv in surveys.values():
        if sv.get("answered"):
            answered += 1
            satisfied += (sv.get("overall") or 0) >= 4
        if sv.get("answered") or (sv.get("sent") and not sv.get("cancelled")):
            sent += 1
    return sent, answered, satisfied


def _business(business: BusinessTime | None, calendar: str | None, start: datetime | None,
              end: datetime | None) -> int | None:
    if business is None or start is None or end is None:
        return None
    seconds = business(calendar, start, end)
    return None if seconds is None else round(seconds * US)


def derive(state: State, business: BusinessTime | None = None) -> dict[str, Any]:
    """The typed columns of a fact row (see migrations/0001_review.sql)."""
    created = state.get("created") or {}
    routed = state.get("routed") or {}
    resolutions = state.get("resolutions") or {}
    first = resolutions[min(resolutions)] if resolutions else {}
    diag, det = state.get("diagnosed") or {}, state.get("determined") or {}
    cause_from = next((r for _, r in sorted(resolutions.items(), reverse=True) if r.get("cause")), {})
    received = _dt(created.get("received_at"))
    responded = _dt((state.get("first_response") or {}).get("at"))
    resolved = _dt(first.get("at"))
    sla = state.get("sla") or {}
    fr_sla, fr_bs = _sla_outcome(sla.get("first_response"))
    res_sla, res_bs = _sla_outcome(sla.get("resolution"))
    started = (sla.get("resolution") or {}).get("started") or (sla.get("first_response") or {}).get("started") or {}
    calendar = started.get("calendar")
    nu_met, nu_breached = _cycles(sla.get("next_update"))
    sent, answered, satisfied = _surveys(state.get("surveys") or {})
    category = routed.get("category")
    return {
        "received_at": received, "channel": created.get("channel"), "customer_key": created.get("customer_key"),
        "complaint": bool(created.get("complaint")) or category in COMPLAINT_CATEGORIES,
        "complaint_type": created.get("complaint_type"),
        "category": category, "priority": routed.get("priority"), "department": routed.get("department"),
        "complaint_department": det.get("department") or routed.get("department"),
        "assignee": routed.get("assignee"), "agent": first.get("actor") or routed.get("assignee"),
        "sub_item": diag.get("sub_item") or cause_from.get("sub_item"),
        "cause": diag.get("cause") or cause_from.get("cause"),
        "responsibility": det.get("responsibility") or diag.get("responsibility"),
        "first_response_at": responded, "first_resolved_at": resolved,
        "final_resolved_at": _dt(resolutions[max(resolutions)]["at"]) if resolutions else None,
        "closed_at": _dt((state.get("closed") or {}).get("at")),
        "first_outcome": first.get("outcome"), "first_contact": first.get("first_contact") if first else None,
        "reopen_count": len(state.get("reopens") or {}), "escalations": len(state.get("escalations") or {}),
        "fr_us": micros(received, responded), "res_us": micros(received, resolved),
        "fr_bus_us": _business(business, calendar, received, responded),
        "res_bus_us": _business(business, calendar, received, resolved),
        "fr_sla": fr_sla, "res_sla": res_sla, "fr_sla_business_s": fr_bs, "res_sla_business_s": res_bs,
        "sla_calendar": calendar, "nu_met": nu_met, "nu_breached": nu_breached,
        "surveys_sent": sent, "surveys_answered": answered, "surveys_satisfied": satisfied,
        "resolved_ats": sorted(_dt(r["at"]) for r in resolutions.values()),
        "reopened_ats": sorted(_dt(a) for a in (state.get("reopens") or {}).values()),
    }
