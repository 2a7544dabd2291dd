"""What each ticket event does to a ticket's SLA clocks (pure: the caller loads and saves).

* ``ticket.created`` starts ``first_response`` and ``resolution`` at ``received_at`` — at once,
  with the priority routing already gave, else the policy's ``unrouted_priority`` (P3); a later
  ``ticket.routed`` re-targets them keeping the running history, so nothing waits on routing.
  Their timers wait up to ``routing_grace`` (``SLA_ROUTING_GRACE_S``, 30 s) for routing, so a
  deadline already passed breaches under the ticket's routed priority.
* ``ticket.routed`` / ``ticket.reprioritized`` re-target (``ticket.routed`` seen before
  ``ticket.created`` is remembered and used when the clocks start).
* ``ticket.waiting`` / ``ticket.resumed`` pause and resume both clocks.
* The first ``ticket.responded`` stops ``first_response``; ``ticket.resolved`` stops
  ``resolution`` (and ``first_response`` if no response came: the resolution reached the customer).
* ``ticket.reopened`` restarts ``resolution`` keeping its business time; ``ticket.closed`` cancels
  what still runs.
* ``survey.negative`` starts the manager's ``callback`` clock (1 h); the next
  ``ticket.responded``, ``ticket.progressed``, ``ticket.reopened`` or ``ticket.closed`` after it
  stops it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from services.sla import domain, promises, records
from services.sla.domain import Announcement, Clock
from services.sla.policy import Policies
from shared.errors import DomainError
from shared.events import (
    SurveyNegative, TicketClosed, TicketCreated, TicketProgressed, TicketReopened, TicketReprioritized, TicketResolved,
    TicketResponded, TicketResumed, TicketRouted, TicketWaiting,
)

TICKET_CLOCKS = ("first_response", "resolution")
# every clock that pauses while the ticket waits on the customer and ends when it closes
PAUSABLE = TICKET_CLOCKS + promises.CUSTOMER_CLOCKS
IGNORED = frozenset({"ticket.escalated", "ticket.escalation_requested", "ticket.customer_replied",
                     "ticket.confirmed",
                     "ticket.diagnosed", "ticket.scheduled", "ticket.verified", "ticket.determined"})
CLOCK_SKEW = timedelta(seconds=5)


@dataclass(frozen=True)
class Ticket:
    ticket_no: str
    received_at: datetime | None = None
    channel: str | None = None
    tier: str = "standard"
    priority: str | None = None
    category: str | None = None
    waiting: bool = False
    closed: bool = False
    intake_seq: int = 0  # the last of intake's events (its per-ticket seq) applied
    expected_by: datetime | None = None  # the customer's deadline (records): may tighten resolution


@dataclass
class Outcome:
    ticket: Ticket
    clocks: dict[str, Clock]
    changed: set[str] = field(default_factory=set)
    announcements: list[Announcement] = field(default_factory=list)
    observations: list[tuple[str, float, dict[str, str]]] = field(default_factory=list)

    def put(self, c: Clock, announcements: list[Announcement] = ()) -> None:  # type: ignore[assignment]
        if self.clocks.get(c.metric) != c:
            self.clocks[c.metric] = c
            self.changed.add(c.metric)
        self.announcements.extend(announcements)


class Reactor:
    """Applies one event to a ticket's state and clocks under ``policies``; ``now`` is the wall clock."""

    def __init__(self, policies: Policies, routing_grace: timedelta = timedelta(0)) -> None:
        self.p = policies
        # An unrouted ticket's timers wait this long for ticket.routed (milliseconds away normally),
        # so a ticket received long ago breaches under its real priority, not the unrouted default.
        self.routing_grace = routing_grace
        self.handlers = {
            "ticket.created": self._created, "ticket.routed": self._routed,
            "ticket.reprioritized": self._reprioritized, "ticket.waiting": self._waiting,
            "ticket.resumed": self._resumed, "ticket.responded": self._responded,
            "ticket.progressed": self._progressed, "ticket.resolved": self._resolved,
            "ticket.reopened": self._reopened, "ticket.closed": self._closed, "survey.negative": self._negative,
        }
        # More clock kinds (records: revisit, steps) react after the event's own handler.
        self.extras: dict[str, list[Any]] = {}
        records.install(self)

    def handles(self, event_type: str) -> bool:
        if event_type in IGNORED and event_type not in self.extras:
            return False
        if event_type not in self.handlers and event_type not in self.extras:
            raise DomainError("type", f"unknown event type {event_type!r}")
        return True

    def react(self, ticket: Ticket | None, clocks: dict[str, Clock], event_type: str, data: dict[str, Any],
              *, time: datetime, now: datetime) -> Outcome:
        out = Outcome(ticket or Ticket(ticket_no=str(data.get("ticket_no"))), dict(clocks))
        if event_type not in ("ticket.created", "ticket.routed") and (ticket is None or ticket.received_at is None):
            raise DomainError("data.ticket_no", f"unknown ticket {out.ticket.ticket_no}: no ticket.created seen")
        if handler := self.handlers.get(event_type):
            handler(out, data, time, now)
        for extra in self.extras.get(event_type, ()):
            extra(out, data, time, now)
        for metric in list(out.changed):  # a deadline already passed fires at once
            c = out.clocks[metric]
            if c.fire_at is not None and c.fire_at <= now:
                fired, said = domain.fire(c, self.cal(c), now, self.p.warning_at)
                out.put(fired, said)
        return out

    # -- helpers ---------------------------------------------------------------------------
    def cal(self, c: Clock):
        if c.calendar == promises.WALL:
            return promises.WALL_CALENDAR
        return self.p.calendars.get(c.calendar) or self.p.calendar(self.p.spec.priorities["P1"].calendar)

    def _at(self, out: Outcome, at: datetime, event_type: str) -> datetime:
        received = out.ticket.received_at
        if received is not None and at < received - CLOCK_SKEW:
            raise DomainError("data.at", f"{event_type} at {at.isoformat()} is before the ticket was received "
                                         f"({received.isoformat()})")
        return at

    def _target(self, metric: str, t: Ticket):
        prio = t.priority or self.p.unrouted_priority
        target = self.p.target(metric, priority=prio, category=t.category, tier=t.tier)
        if metric == "resolution":
            target = records.tightened(self.p, target, t)
        return prio, target

    def _retarget(self, out: Outcome, at: datetime) -> None:
        for metric in TICKET_CLOCKS:
            if c := out.clocks.get(metric):
                prio, target = self._target(metric, out.ticket)
                cal = self.p.calendar(target.calendar)
                out.put(*domain.retarget(c, target, prio, at, cal, self.p.warning_at))
        promises.retarget(self, out, at)

    def _stop(self, out: Outcome, metric: str, at: datetime, now: datetime) -> float | None:
        c = out.clocks.get(metric)
        if c is None:
            return None
        done, said, spent = domain.stop(c, self.cal(c), at, now)
        out.put(done, said)
        return spent

    # -- events ----------------------------------------------------------------------------
    def _created(self, out: Outcome, data: dict[str, Any], time: datetime, now: datetime) -> None:
        m = TicketCreated.model_validate(data)
        if out.ticket.received_at is not None:
            return  # already started
        out.ticket = replace(out.ticket, received_at=m.received_at, channel=m.channel, tier=m.customer.tier,
                             expected_by=m.expected_by)
        for metric in TICKET_CLOCKS:
            prio, target = self._target(metric, out.ticket)
            c, said = domain.start(out.ticket.ticket_no, metric, prio, target, m.received_at,
                                   self.p.calendar(target.calendar), self.p.warning_at)
            if out.ticket.priority is None and self.routing_grace and c.fire_at is not None:
                c = replace(c, fire_at=max(c.fire_at, now + self.routing_grace))
            out.put(c, said)

    def _routed(self, out: Outcome, data: dict[str, Any], time: datetime, now: datetime) -> None:
        m = TicketRouted.model_validate(data)
        out.ticket = replace(out.ticket, priority=m.priority, category=m.category)
        self._retarget(out, max(time, out.ticket.received_at or time))

    def _reprioritized(self, out: Outcome, data: dict[str, Any], time: datetime, now: datetime) -> None:
        m = TicketReprioritized.model_validate(data)
        out.ticket = replace(out.ticket, priority=m.priority)
        self._retarget(out, self._at(out, m.at, "ticket.reprioritized"))

    def _waiting(self, out: Outcome, data: dict[str, Any], time: datetime, now: datetime) -> None:
        m = TicketWaiting.model_validate(data)
        at = self._at(out, m.at, "ticket.waiting")
        out.ticket = replace(out.ticket, waiting=True)
        for metric in PAUSABLE:
            if c := out.clocks.get(metric):
                out.put(domain.pause(c, at))

    def _resumed(self, out: Outcome, data: dict[str, Any], time: datetime, now: datetime) -> None:
        m = TicketResumed.model_validate(data)
        at = self._at(out, m.at, "ticket.resumed")
        out.ticket = replace(out.ticket, waiting=False)
        for metric in PAUSABLE:
            if c := out.clocks.get(metric):
                out.put(*domain.resume(c, at, self.cal(c), self.p.warning_at))

    def _responded(self, out: Outcome, data: dict[str, Any], time: datetime, now: datetime) -> None:
        m = TicketResponded.model_validate(data)
        at = self._at(out, m.at, "ticket.responded")
        self._first_response(out, at, now)
        self._callback_done(out, at, now)
        promises.updated(self, out, at, now)  # every reply to the customer is an update

    def _first_response(self, out: Outcome, at: datetime, now: datetime) -> None:
        c = out.clocks.get("first_response")
        if c is not None and not c.stopped and self._stop(out, "first_response", at, now) is not None:
            t = out.ticket
            wall = max(0.0, (at - t.received_at).total_seconds()) if t.received_at else 0.0
            out.observations.append(("first_response", wall, {"priority": c.priority, "channel": t.channel or ""}))

    def _callback_done(self, out: Outcome, at: datetime, now: datetime) -> None:
        c = out.clocks.get("callback")
        if c is not None and not c.stopped and at >= c.started_at:
            self._stop(out, "callback", at, now)

    def _progressed(self, out: Outcome, data: dict[str, Any], time: datetime, now: datetime) -> None:
        m = TicketProgressed.model_validate(data)
        at = self._at(out, m.at, "ticket.progressed")
        self._callback_done(out, at, now)
        if m.visible_to_customer:
            promises.updated(self, out, at, now)
        if m.eta is not None:
            promises.promised(self, out, m.eta, at)

    def _resolved(self, out: Outcome, data: dict[str, Any], time: datetime, now: datetime) -> None:
        m = TicketResolved.model_validate(data)
        at = self._at(out, m.at, "ticket.resolved")
        self._first_response(out, at, now)
        out.ticket = replace(out.ticket, waiting=False)
        promises.resolved(self, out, at, now)
        c = out.clocks.get("resolution")
        if c is not None and not c.stopped and self._stop(out, "resolution", at, now) is not None:
            t = out.ticket
            wall = max(0.0, (at - t.received_at).total_seconds()) if t.received_at else 0.0
            labels = {"priority": m.priority or c.priority, "category": m.category or t.category or "none"}
            out.observations.append(("resolution", wall, labels))

    def _reopened(self, out: Outcome, data: dict[str, Any], time: datetime, now: datetime) -> None:
        m = TicketReopened.model_validate(data)
        at = self._at(out, m.at, "ticket.reopened")
        self._callback_done(out, at, now)
        if c := out.clocks.get("resolution"):
            out.put(*domain.restart(c, at, self.cal(c), self.p.warning_at))
        promises.reopened(self, out, at, now)

    def _closed(self, out: Outcome, data: dict[str, Any], time: datetime, now: datetime) -> None:
        m = TicketClosed.model_validate(data)
        at = self._at(out, m.at, "ticket.closed")
        self._callback_done(out, at, now)
        out.ticket = replace(out.ticket, closed=True, waiting=False)
        for metric in PAUSABLE:
            if c := out.clocks.get(metric):
                out.put(domain.cancel(c, at))

    def _negative(self, out: Outcome, data: dict[str, Any], time: datetime, now: datetime) -> None:
        SurveyNegative.model_validate(data)
        c = out.clocks.get("callback")
        if c is not None and not c.stopped:
            return  # a call-back is already owed
        prio, target = self._target("callback", out.ticket)
        new, said = domain.start(out.ticket.ticket_no, "callback", prio, target, time,
                                 self.p.calendar(target.calendar), self.p.warning_at)
        out.put(new, said)
