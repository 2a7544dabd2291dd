"""The customer-side clocks (issue #15), pure, on top of the clock machinery in ``domain.py``:

* ``eta`` — a promised time told to the customer (``ticket.progressed`` with ``eta``, "预计24小时内完成维修"):
  a clock on wall time from the note to the promise; a new ``eta`` replaces it (the old one ends
  silently), the resolution stops it (``sla.met`` when kept), and otherwise it warns at ``warning_at``
  and breaches at the promised instant — routing escalates the warning to the handler's lead and the
  breach to the supervisor, like every SLA clock.
* ``next_update`` — regular updates (Zendesk's "periodic update"): a per-priority target in the policy
  (``next_update`` under ``[priorities.Px]``), started by the first reply to the customer and restarted
  by every customer-visible reply or progress note (each ending is a ``sla.met``, or the breach already
  said), stopped by the resolution, started again on reopening.

Both pause while the ticket waits on the customer and are cancelled when it closes.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from services.sla import domain
from services.sla.business_time import AlwaysOpen
from services.sla.policy import Target

if TYPE_CHECKING:
    from services.sla.lifecycle import Outcome, Reactor

CUSTOMER_CLOCKS = ("eta", "next_update")
WALL = "wall"  # the eta clock's calendar: a promise to the customer is wall time, whatever the policy
WALL_CALENDAR = AlwaysOpen(WALL)


def _start(r: Reactor, out: Outcome, metric: str, priority: str, target: Target, at: datetime) -> None:
    cal = WALL_CALENDAR if target.calendar == WALL else r.p.calendar(target.calendar)
    new, said = domain.start(out.ticket.ticket_no, metric, priority, target, at, cal, r.p.warning_at)
    if out.ticket.waiting:  # told while waiting on the customer: the clock starts paused, said on resume
        new, said = domain.pause(new, at), []
    out.put(new, said)


def _end(r: Reactor, out: Outcome, metric: str, at: datetime, now: datetime) -> None:
    c = out.clocks.get(metric)
    if c is not None and not c.stopped:
        done, said, _ = domain.stop(c, r.cal(c), at, now)
        out.put(done, said)


def updated(r: Reactor, out: Outcome, at: datetime, now: datetime) -> None:
    """A customer-visible reply or progress note: the ``next_update`` clock starts over."""
    priority = out.ticket.priority or r.p.unrouted_priority
    target = r.p.next_update_target(priority=priority, category=out.ticket.category, tier=out.ticket.tier)
    if target is None or out.ticket.closed:
        return
    _end(r, out, "next_update", at, now)
    _start(r, out, "next_update", priority, target, at)


def promised(r: Reactor, out: Outcome, eta: datetime, at: datetime) -> None:
    """A new promise replaces the one before (which ends without an announcement)."""
    c = out.clocks.get("eta")
    if c is not None and not c.stopped:
        out.put(domain.cancel(c, at))
    priority = out.ticket.priority or r.p.unrouted_priority
    seconds = max(1.0, (eta - at).total_seconds())
    _start(r, out, "eta", priority, Target(f"eta:{priority}", WALL, seconds), at)


def resolved(r: Reactor, out: Outcome, at: datetime, now: datetime) -> None:
    for metric in CUSTOMER_CLOCKS:
        _end(r, out, metric, at, now)


def reopened(r: Reactor, out: Outcome, at: datetime, now: datetime) -> None:
    """Reopened: the customer is owed news again (the old promise ended with the resolution)."""
    if "next_update" in out.clocks:
        updated(r, out, at, now)


def retarget(r: Reactor, out: Outcome, at: datetime) -> None:
    """A new priority: the running ``next_update`` clock takes its target (elapsed time kept)."""
    c = out.clocks.get("next_update")
    priority = out.ticket.priority or r.p.unrouted_priority
    target = r.p.next_update_target(priority=priority, category=out.ticket.category, tier=out.ticket.tier)
    if c is None or target is None:
        return
    out.put(*domain.retarget(c, target, priority, at, r.p.calendar(target.calendar), r.p.warning_at))
