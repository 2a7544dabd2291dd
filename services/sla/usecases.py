"""The SLA service's use cases: each is one unit of work (``rt.unit``) holding the clock changes, the events they
announce (outbox) and the inbox row of the message that caused them."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import asyncpg

from services.sla import metrics, store
from services.sla.domain import Announcement
from services.sla.lifecycle import Reactor, Ticket
from shared.envelope import CloudEvent
from shared.errors import DomainError
from shared.runtime import Runtime
from shared.unit import Unit, Within

SERVICE = "sla"
CONSUMER = "sla.tickets"
log = logging.getLogger(__name__)


def announce(u: Unit, announcements: list[Announcement]) -> None:
    for clock, event in announcements:
        u.emit(clock.ticket_no, event)


class OutOfOrder(Exception):
    """An intake event came before an earlier one of the same ticket: retried (nack), not dead-lettered."""


INTAKE = "/helpdesk/intake"


def _gate(ticket: Ticket | None, event: CloudEvent, *, last_try: bool) -> bool:
    """Intake's events apply in their per-ticket ``seq`` order (the broker may deliver them concurrently,
    or to several replicas). True: apply; False: an older copy, skip; ``OutOfOrder``: retry later.
    On the last delivery a gap becomes a dead letter with its reason."""
    if event.source != INTAKE:
        return True
    seq = int(event.data.get("seq") or 0)
    last = ticket.intake_seq if ticket else 0
    if seq == 0 or seq == last + 1:
        return True
    if seq <= last:
        return False
    if not last_try:
        raise OutOfOrder(f"{event.type} seq {seq} of {event.ticket_no} before seq {last + 1}")
    if ticket is None or ticket.received_at is None:
        raise DomainError("data.ticket_no", f"unknown ticket {event.ticket_no}: no ticket.created seen")
    raise DomainError("data.seq", f"{event.type} has seq {seq} but seq {last + 1} never arrived")


async def apply_event(rt: Runtime, reactor: Reactor, event: CloudEvent, *, last_try: bool = True,
                      within: Within = None) -> None:
    """Apply a ticket or survey event to the ticket's clocks (a redelivered event changes nothing)."""
    handled = reactor.handles(event.type)
    if not handled and event.source != INTAKE:
        return
    if not event.ticket_no:
        raise DomainError("data.ticket_no", "missing")
    async with rt.unit(consumer=CONSUMER, event=event, within=within) as u:
        if u.duplicate:
            return
        conn = u.conn
        # the row lock serialises this ticket's events; the first events make sure there is a row to lock
        ticket = await store.lock_ticket(conn, ticket_no=event.ticket_no,
                                         create=event.type in ("ticket.created", "ticket.routed"))
        if not _gate(ticket, event, last_try=last_try):
            return
        if not handled:  # an intake event the clocks ignore still advances the ticket's sequence
            if ticket is not None:
                await store.save_ticket(conn, ticket=replace(ticket, intake_seq=int(event.data["seq"])), exists=True)
            return
        clocks = await store.lock_clocks(conn, ticket_no=event.ticket_no)
        out = reactor.react(ticket, clocks, event.type, event.data, time=event.time, now=datetime.now(UTC))
        if event.source == INTAKE:
            out.ticket = replace(out.ticket, intake_seq=int(event.data.get("seq") or 0))
        if out.ticket != ticket:
            await store.save_ticket(conn, ticket=out.ticket, exists=ticket is not None)
        if out.changed:
            await store.save_clocks(conn, [out.clocks[m] for m in sorted(out.changed)])
        announce(u, out.announcements)
        u.after_commit(lambda: metrics.count(out.announcements))
        u.after_commit(lambda: metrics.observe(out.observations))
    if out.announcements:
        log.info("sla clocks changed", extra={"ticket_no": event.ticket_no, "cause": event.type,
                                              "announced": [e.type for _, e in out.announcements]})


async def view(pool: asyncpg.Pool, *, ticket_no: str) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        clocks = await store.clocks_of(conn, ticket_no=ticket_no)
    return [
        {"metric": c.metric, "priority": c.priority, "policy": c.policy, "calendar": c.calendar,
         "target_s": c.target_s, "state": c.outcome or ("running" if c.running else "paused"),
         "started_at": c.started_at, "due_at": c.due_at, "warned": c.warned, "breached": c.breached,
         "stopped_at": c.stopped_at, "next_timer_at": c.fire_at}
        for c in clocks
    ]


async def refresh_open_gauge(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        metrics.set_open(await store.open_timer_counts(conn))
