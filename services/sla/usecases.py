"""The SLA service's use cases: each is one unit of work (``rt.unit``) holding the clock changes, the events they
announce (outbox) and the inbox row of the message that caused them."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import asyncpg

from services.sla import metrics, store
from services.sla.domain import Announcement, Clock
from services.sla.lifecycle import Reactor, Ticket
from shared.envelope import CloudEvent
from shared.errors import DomainError
from shared.runtime import Runtime
from shared.unit import Tx, Unit, Within

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


@dataclass(eq=False)
class _Held:
    """A ticket's row and clocks as this transaction holds them (locked), and what changed in them. Read
    once a transaction and written once at its flush (``_write_held``): a batch's events about one
    ticket share one read and one write, and each sees what the ones before it changed."""

    ticket_no: str
    ticket: Ticket | None
    clocks: dict[str, Clock] | None = None  # read when a change needs them
    ticket_changed: bool = False
    clocks_changed: set[str] = field(default_factory=set)


def _creates(event: CloudEvent) -> bool:
    return event.type in ("ticket.created", "ticket.routed")


async def prepare(tx: Tx, reactor: Reactor, events: list[CloudEvent]) -> None:
    """A batch's tickets and their clocks, read and locked in two statements before its events apply:
    each event then finds its ticket held (``_held``); the first events make sure there is a row."""
    mine = [e for e in events if e.ticket_no and (reactor.handles(e.type) or e.source == INTAKE)]
    if not mine:
        return
    tickets = await _lock(tx, {e.ticket_no for e in mine}, create={e.ticket_no for e in mine if _creates(e)})
    clocks = await store.lock_clocks(tx.conn, ticket_nos=[no for no, t in tickets.items() if t])
    for no, t in tickets.items():
        tx.memo[("sla.held", no)] = _Held(no, t, clocks=clocks[no] if t else {})


async def _lock(tx: Tx, nos: set[str], *, create: set[str]) -> dict[str, Ticket | None]:
    """``nos``' rows locked (stubs made for ``create``), None for those without one: one statement."""
    got = await store.lock_tickets(tx.conn, create=list(create), read=list(nos - create))
    return {no: got.get(no) for no in nos | create}


async def _held(u: Unit, ticket_no: str, *, create: bool) -> _Held:
    key = ("sla.held", ticket_no)
    held = u.memo.get(key)
    if held is None or (held.ticket is None and create):  # not held yet; or seen unknown, now the stub
        ticket = (await _lock(u.tx, {ticket_no}, create={ticket_no} if create else set()))[ticket_no]
        held = u.memo[key] = _Held(ticket_no, ticket)
    return held


async def _clocks(u: Unit, held: _Held) -> dict[str, Clock]:
    if held.clocks is None:
        held.clocks = ((await store.lock_clocks(u.conn, ticket_nos=[held.ticket_no]))[held.ticket_no]
                       if held.ticket else {})
    return held.clocks


def _changed(u: Unit, held: _Held, *, ticket: Ticket | None = None, clocks: dict[str, Clock] | None = None) -> None:
    """Note a change (written at the flush); the first change of a ticket stages its write."""
    first = not (held.ticket_changed or held.clocks_changed)
    if ticket is not None:
        held.ticket, held.ticket_changed = ticket, True
    if clocks:
        held.clocks = {**(held.clocks or {}), **clocks}
        held.clocks_changed |= set(clocks)
    if first and (held.ticket_changed or held.clocks_changed):
        u.stage(_write_held, held)


async def _write_held(conn: asyncpg.Connection, helds: list[_Held]) -> None:
    """The changed tickets and clocks of a transaction: one statement each (the flush calls it)."""
    await store.save_tickets(conn, [h.ticket for h in helds if h.ticket_changed and h.ticket is not None])
    await store.save_clocks(conn, [h.clocks[m] for h in helds if h.clocks for m in sorted(h.clocks_changed)])


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
        # the row lock serialises this ticket's events; the first events make sure there is a row to lock
        held = await _held(u, event.ticket_no, create=_creates(event))
        ticket = held.ticket
        if not _gate(ticket, event, last_try=last_try):
            return
        if not handled:  # an intake event the clocks ignore still advances the ticket's sequence
            if ticket is not None:
                _changed(u, held, ticket=replace(ticket, intake_seq=int(event.data["seq"])))
            return
        out = reactor.react(ticket, await _clocks(u, held), event.type, event.data, time=event.time,
                            now=datetime.now(UTC))
        if event.source == INTAKE:
            out.ticket = replace(out.ticket, intake_seq=int(event.data.get("seq") or 0))
        _changed(u, held, ticket=out.ticket if out.ticket != ticket else None,
                 clocks={m: out.clocks[m] for m in out.changed})
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
