"""SLA clocks, pure: start, pause, resume, re-target, stop, fire — and what each announces.

A clock keeps its running history as closed segments plus the open one, so its business time can
be measured on any calendar: a re-prioritisation that moves a ticket from the business calendar to
24×7 recomputes the deadline from the same running history. The deadline (``due_at``) and the
warning point (``warn_at``) are the instants where the history reaches 100 % / ``warning_at`` of
the target; both may lie in the past (then the clock fires at once). ``fire_at`` is the next timer:
the earlier of the two not yet announced, only while the clock runs (a paused clock whose history
already passed the target still breaches).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from services.sla.business_time import Calendar
from services.sla.policy import Target
from shared.events import EventData, SlaBreached, SlaMet, SlaStarted, SlaWarning

Segment = tuple[datetime, datetime]


@dataclass(frozen=True)
class Clock:
    ticket_no: str
    metric: str  # first_response | resolution | callback
    priority: str
    policy: str
    calendar: str
    target_s: float
    started_at: datetime
    segments: tuple[Segment, ...] = ()
    open_since: datetime | None = None
    warned: bool = False
    breached: bool = False
    outcome: str | None = None  # met | breached | cancelled, once stopped
    stopped_at: datetime | None = None
    due_at: datetime | None = None
    warn_at: datetime | None = None
    fire_at: datetime | None = None

    @property
    def running(self) -> bool:
        return self.open_since is not None

    @property
    def stopped(self) -> bool:
        return self.outcome is not None

    def last_mark(self) -> datetime:
        """The latest instant in the history: nothing may happen to the clock before it."""
        if self.open_since is not None:
            return self.open_since
        return self.segments[-1][1] if self.segments else self.started_at


Announcement = tuple[Clock, EventData]


def elapsed(c: Clock, cal: Calendar, at: datetime) -> float:
    """Business seconds the clock has counted by ``at``."""
    total = sum(cal.elapsed(a, b) for a, b in c.segments)
    if c.open_since is not None and at > c.open_since:
        total += cal.elapsed(c.open_since, at)
    return total


def reach(c: Clock, cal: Calendar, seconds: float) -> datetime | None:
    """When the clock's business time reaches ``seconds``: in its past segments, or ahead of the open
    one; ``None`` when it is paused short of it."""
    remaining = seconds
    for a, b in c.segments:
        spent = cal.elapsed(a, b)
        if spent >= remaining:
            return cal.add(a, remaining)
        remaining -= spent
    if c.open_since is None:
        return None
    return cal.add(c.open_since, remaining)


def schedule(c: Clock, cal: Calendar, warning_at: float) -> Clock:
    """Recompute ``due_at``, ``warn_at`` and the next timer ``fire_at``."""
    if c.stopped:
        return replace(c, warn_at=None, fire_at=None)
    due = reach(c, cal, c.target_s)
    warn = None if c.warned else reach(c, cal, c.target_s * warning_at)
    timers = []
    if not c.breached:
        if due is not None:
            timers.append(due)
        if warn is not None and c.running:
            timers.append(warn)
    return replace(c, due_at=due, warn_at=warn, fire_at=min(timers) if timers else None)


def start(ticket_no: str, metric: str, priority: str, target: Target, at: datetime, cal: Calendar,
          warning_at: float) -> tuple[Clock, list[Announcement]]:
    c = Clock(ticket_no=ticket_no, metric=metric, priority=priority, policy=target.policy,
              calendar=target.calendar, target_s=target.seconds, started_at=at, open_since=at)
    c = schedule(c, cal, warning_at)
    return c, [(c, started(c))]


def started(c: Clock) -> SlaStarted:
    assert c.due_at is not None
    target = ("expected_by" if c.policy.startswith("expected_by") else "policy") if c.metric == "resolution" else None
    return SlaStarted(**public_metric(c), due_at=c.due_at, policy=c.policy, calendar=c.calendar,
                      target=target)  # type: ignore[arg-type]


def public_metric(c: Clock) -> dict[str, str | None]:
    """How a clock is named in its events: a step clock (stored as ``step:<name>``, one row per step)
    is metric ``step`` with ``step`` and its ``limit``; resolution says which target applied."""
    if c.metric.startswith("step:"):
        return {"metric": "step", "step": c.metric.removeprefix("step:"), "limit": c.policy.rsplit(":", 1)[-1]}
    return {"metric": c.metric}


def pause(c: Clock, at: datetime) -> Clock:
    if c.stopped or c.open_since is None:
        return c
    return replace(c, segments=(*c.segments, (c.open_since, max(at, c.open_since))), open_since=None,
                   fire_at=None)


def resume(c: Clock, at: datetime, cal: Calendar, warning_at: float) -> tuple[Clock, list[Announcement]]:
    """Run again from ``at``; the deadline moves by the paused time and is announced again."""
    if c.stopped or c.running:
        return c, []
    c = schedule(replace(c, open_since=max(at, c.last_mark())), cal, warning_at)
    return c, [(c, started(c))] if not c.breached else []


def retarget(c: Clock, target: Target, priority: str, at: datetime, cal: Calendar,
             warning_at: float) -> tuple[Clock, list[Announcement]]:
    """A new policy (routing, reprioritisation): same running history, new target and calendar.

    A warning already given is given again only if the new target puts the clock back before the
    warning point; a breach already announced stays announced.
    """
    if c.stopped or (c.policy, c.calendar, c.target_s, c.priority) == (
            target.policy, target.calendar, target.seconds, priority):
        return c, []
    spent = elapsed(c, cal, at)
    c = replace(c, policy=target.policy, calendar=target.calendar, target_s=target.seconds, priority=priority,
                warned=c.warned and spent >= target.seconds * warning_at)
    c = schedule(c, cal, warning_at)
    return c, [(c, started(c))] if c.running and not c.breached else []


def fire(c: Clock, cal: Calendar, now: datetime, warning_at: float) -> tuple[Clock, list[Announcement]]:
    """The due timer's announcement: the breach if the deadline has passed (a warning then is
    noise and is skipped), else the 80 % warning."""
    if c.stopped or c.fire_at is None or c.fire_at > now:
        return c, []
    if not c.breached and c.due_at is not None and c.due_at <= now:
        c = schedule(replace(c, breached=True, warned=True), cal, warning_at)
        return c, [(c, SlaBreached(**public_metric(c), due_at=c.due_at, breached_at=now))]  # type: ignore[arg-type]
    if not c.warned and c.warn_at is not None and c.warn_at <= now and c.due_at is not None:
        remaining = max(0.0, c.target_s - elapsed(c, cal, now))
        c = schedule(replace(c, warned=True), cal, warning_at)
        return c, [(c, SlaWarning(**public_metric(c), due_at=c.due_at, remaining_s=round(remaining, 3)))]  # type: ignore[arg-type]
    return schedule(c, cal, warning_at), []


def stop(c: Clock, cal: Calendar, at: datetime, now: datetime) -> tuple[Clock, list[Announcement], float | None]:
    """The clock's promise is kept (or not) at ``at``: ``sla.met`` within target, ``sla.breached``
    if late and not yet announced, nothing if the breach was already announced.

    Returns the business seconds counted, or ``None`` when the clock had already stopped.
    """
    if c.stopped:
        return c, [], None
    at = max(at, c.last_mark())
    closed = pause(c, at)
    spent = elapsed(closed, cal, at)
    due = reach(closed, cal, c.target_s) or cal.add(at, c.target_s - spent)
    if c.breached or spent > c.target_s:
        outcome = "breached"
    else:
        outcome = "met"
    done = replace(closed, outcome=outcome, stopped_at=at, due_at=due, warn_at=None, fire_at=None)
    if c.breached:
        return done, [], spent
    if outcome == "met":
        return done, [(done, SlaMet(**public_metric(c), due_at=due, met_at=at,  # type: ignore[arg-type]
                                    business_seconds=round(spent, 3)))], spent
    done = replace(done, breached=True, warned=True)
    return done, [(done, SlaBreached(**public_metric(c), due_at=due, breached_at=now))], spent  # type: ignore[arg-type]


def cancel(c: Clock, at: datetime) -> Clock:
    """The ticket closed with this promise still open: the clock ends with no announcement."""
    if c.stopped:
        return c
    return replace(pause(c, at), outcome="cancelled", stopped_at=at, warn_at=None, fire_at=None)


def restart(c: Clock, at: datetime, cal: Calendar, warning_at: float) -> tuple[Clock, list[Announcement]]:
    """Reopen: the resolution clock runs again, keeping the business time already counted."""
    if not c.stopped:
        return c, []
    c = replace(c, outcome=None, stopped_at=None, open_since=max(at, c.last_mark()))
    c = schedule(c, cal, warning_at)
    return c, [(c, started(c))] if not c.breached else []
