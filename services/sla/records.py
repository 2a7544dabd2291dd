"""The records clocks (#14), through the existing clock machinery (``domain.start/stop/pause/…``):

* ``revisit`` — the follow-up call after resolution: started by ``ticket.resolved`` of a complaint
  (or of a category the policy lists; default 2 working days), met by ``ticket.revisited``,
  cancelled by ``ticket.reopened`` (the next resolution owes a new one) or ``ticket.closed``; a breach escalates like any.
* ``step`` — the category's sequence of steps (policy ``[steps.<category>]``): the first step's clock
  starts at ``received_at`` once the category is known (``ticket.routed``); ``ticket.progressed``
  naming a later ``step`` meets the running step and starts that one; ``ticket.resolved`` meets the
  running step; waiting pauses it, a reopen restarts the last one, closing cancels it. Each step is
  its own clock row (``step:<name>``), announced as metric ``step`` with ``step`` and ``limit``.
* ``tightened`` — an ``expected_by`` earlier than the policy's resolution deadline becomes the
  resolution target (policy ``expected_by``, 24×7): ``sla.started`` says ``target: expected_by``.
"""

from __future__ import annotations

import logging

from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from services.sla import domain
from services.sla.business_time import AlwaysOpen
from services.sla.policy import Policies, Target
from shared.events import TicketProgressed, TicketReopened, TicketResolved, TicketRevisited

if TYPE_CHECKING:
    from services.sla.lifecycle import Outcome, Reactor, Ticket

log = logging.getLogger(__name__)
COMPLAINT_CATEGORIES = ("complaint", "attitude")
ALWAYS = "always"


def install(r: Reactor) -> None:
    """Register the records reactions on ``r`` (run after each event's own handler)."""
    for event_type, fn in (
        ("ticket.created", _steps_begin), ("ticket.routed", _steps_begin), ("ticket.progressed", _step_reached),
        ("ticket.responded", _responded),
        ("ticket.waiting", _pause), ("ticket.resumed", _resume), ("ticket.resolved", _resolved),
        ("ticket.reopened", _reopened), ("ticket.closed", _closed), ("ticket.revisited", _revisited),
    ):
        r.extras.setdefault(event_type, []).append(partial(fn, r))


def tightened(p: Policies, target: Target, t: Ticket) -> Target:
    """The resolution target: the customer's ``expected_by`` when it comes before the policy's deadline."""
    if t.expected_by is None or t.received_at is None:
        return target
    if t.expected_by >= p.calendar(target.calendar).add(t.received_at, target.seconds):
        return target
    calendar = next((n for n, c in p.calendars.items() if isinstance(c, AlwaysOpen)), None)
    if calendar is None:
        calendar = ALWAYS
        p.calendars[ALWAYS] = AlwaysOpen(ALWAYS)
    return Target("expected_by", calendar, max(1.0, (t.expected_by - t.received_at).total_seconds()))


def _steps(out: Outcome) -> dict[str, domain.Clock]:
    return {m: c for m, c in out.clocks.items() if m.startswith("step:")}


def _running_steps(out: Outcome) -> list[domain.Clock]:
    return [c for c in _steps(out).values() if not c.stopped]


def _start(r: Reactor, out: Outcome, metric: str, target: Target, at: datetime) -> None:
    c, said = domain.start(out.ticket.ticket_no, metric, out.ticket.priority or r.p.unrouted_priority, target, at,
                           r.p.calendar(target.calendar), r.p.warning_at)
    out.put(c, said)


def _stop_steps(r: Reactor, out: Outcome, at: datetime, now: datetime) -> None:
    for c in _running_steps(out):
        done, said, _ = domain.stop(c, r.cal(c), at, now)
        out.put(done, said)


def _steps_begin(r: Reactor, out: Outcome, data: dict[str, Any], time: datetime, now: datetime) -> None:
    t = out.ticket
    if t.received_at is None or t.closed or _steps(out) or "resolution" in out.clocks and \
            out.clocks["resolution"].stopped:
        return
    steps = r.p.steps(t.category)
    if steps:
        name, target = steps[0]
        # first routing: the step runs since the ticket was received; a later re-classification
        # (transfer, diagnosis) starts the new category's sequence when it happens
        first = data.get("reason") in (None, "created", "dequeued") or event_type_is_created(data)
        at = t.received_at if first else max(time, t.received_at)
        _start(r, out, f"step:{name}", target, at)
        if t.waiting:
            out.put(domain.pause(out.clocks[f"step:{name}"], max(time, at)))


def _step_reached(r: Reactor, out: Outcome, data: dict[str, Any], time: datetime, now: datetime) -> None:
    m = TicketProgressed.model_validate(data)
    if not m.step:
        return
    steps = dict(r.p.steps(out.ticket.category))
    if m.step not in steps:
        log.info("progress names a step the category has not", extra={"ticket_no": out.ticket.ticket_no,
                                                                      "step": m.step})
        return
    if f"step:{m.step}" in out.clocks:
        return  # reached already
    _stop_steps(r, out, m.at, now)
    _start(r, out, f"step:{m.step}", steps[m.step], m.at)


def event_type_is_created(data: dict[str, Any]) -> bool:
    return "received_at" in data  # ticket.created (routing was seen first)


def _responded(r: Reactor, out: Outcome, data: dict[str, Any], time: datetime, now: datetime) -> None:
    """The first response meets a running step named ``respond`` and starts the next step."""
    if not data.get("first"):
        return
    at = datetime.fromisoformat(str(data["at"]))
    running = _running_steps(out)
    if not running or running[0].metric != "step:respond":
        return
    names = [n for n, _ in r.p.steps(out.ticket.category)]
    _stop_steps(r, out, at, now)
    if "respond" in names and names.index("respond") + 1 < len(names):
        nxt = names[names.index("respond") + 1]
        if f"step:{nxt}" not in out.clocks:
            _start(r, out, f"step:{nxt}", dict(r.p.steps(out.ticket.category))[nxt], at)


def _pause(r: Reactor, out: Outcome, data: dict[str, Any], time: datetime, now: datetime) -> None:
    for c in _running_steps(out):
        out.put(domain.pause(c, datetime.fromisoformat(str(data["at"]))))


def _resume(r: Reactor, out: Outcome, data: dict[str, Any], time: datetime, now: datetime) -> None:
    for c in _running_steps(out):
        out.put(*domain.resume(c, datetime.fromisoformat(str(data["at"])), r.cal(c), r.p.warning_at))


def _resolved(r: Reactor, out: Outcome, data: dict[str, Any], time: datetime, now: datetime) -> None:
    m = TicketResolved.model_validate(data)
    _stop_steps(r, out, m.at, now)
    category = m.category or out.ticket.category
    complaint = m.complaint or category in COMPLAINT_CATEGORIES
    target = r.p.revisit_target(category=category, complaint=complaint)
    c = out.clocks.get("revisit")
    if target is not None and (c is None or c.stopped):
        _start(r, out, "revisit", target, m.at)


def _reopened(r: Reactor, out: Outcome, data: dict[str, Any], time: datetime, now: datetime) -> None:
    m = TicketReopened.model_validate(data)
    c = out.clocks.get("revisit")
    if c is not None and not c.stopped:
        out.put(domain.cancel(c, m.at))
    steps = sorted(_steps(out).values(), key=lambda s: s.started_at)
    if steps and not _running_steps(out) and steps[-1].outcome != "cancelled":
        out.put(*domain.restart(steps[-1], m.at, r.cal(steps[-1]), r.p.warning_at))


def _closed(r: Reactor, out: Outcome, data: dict[str, Any], time: datetime, now: datetime) -> None:
    at = datetime.fromisoformat(str(data["at"]))
    for c in [*_running_steps(out), out.clocks.get("revisit")]:
        if c is not None and not c.stopped:
            out.put(domain.cancel(c, at))


def _revisited(r: Reactor, out: Outcome, data: dict[str, Any], time: datetime, now: datetime) -> None:
    m = TicketRevisited.model_validate(data)
    c = out.clocks.get("revisit")
    if c is not None and not c.stopped:
        done, said, _ = domain.stop(c, r.cal(c), r._at(out, m.at, "ticket.revisited"), now)
        out.put(done, said)



