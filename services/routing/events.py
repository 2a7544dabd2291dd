"""Routing's outgoing events: the contract's ``ticket.routed`` / ``ticket.escalated`` with the extra
fields routing knows (the contract welcomes more fields; subscribers ignore what they do not read)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from shared.events import TicketEscalated, TicketRouted


class Routed(TicketRouted):
    """``ticket.routed``: where the ticket is now. ``state`` is ``assigned``, ``queued`` (waiting for
    capacity in ``department``) or ``unassigned`` (escalated to the manager)."""

    reason: Literal["created", "dequeued", "reprioritized", "reopened", "transferred", "diagnosed"]
    state: Literal["assigned", "queued", "unassigned"]
    priority_rule: str | None = None
    rules_version: str | None = None


class Escalated(TicketEscalated):
    """``ticket.escalated``: ``level`` in the escalation chain, ``to`` the person, ``role`` their role;
    ``due_at`` is the call-back deadline when a negative survey triggered it."""

    role: str
    trigger: Literal["requested", "sla_warning", "sla_breached", "survey_negative", "unassignable", "step_warning",
                     "step_breached"]
    step: str | None = None  # step_warning / step_breached: the step overdue
    department: str | None = None
    due_at: datetime | None = None
