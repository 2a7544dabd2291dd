"""Turn an event into deliveries: one unit of work with the inbox claim, the ticket facts and the
planned rows. Nothing is sent here; the worker sends after the broker message is acked."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from collections.abc import Callable

from services.notification import domain, metrics, store
from services.notification.config import RulesConfig
from shared.envelope import CloudEvent
from shared.runtime import Runtime
from shared.unit import Tx, Unit, Within

CONSUMER = "notification.events"
FACTS, DIRTY = "notification.facts", "notification.dirty"  # Tx.memo keys: the batch's locked facts


async def prepare(tx: Tx, events: list[CloudEvent]) -> None:
    """A batch's ticket facts, read and locked in one statement before its events are planned; the rows
    its events would create (their first fact-bearing event: ``update_facts``' upsert) are made by that
    statement too, so the batch holds every ticket it has facts for and upserts none. (An inbox duplicate
    is not planned, but its first handling made the row, so none is made for it here.)"""
    tx.memo[FACTS] = await store.lock_facts(tx.conn, ticket_nos=[e.ticket_no for e in events if e.ticket_no],
                                            create=[e.ticket_no for e in events if e.ticket_no and _has_facts(e)])
    tx.memo[DIRTY] = set()


def _has_facts(event: CloudEvent) -> bool:
    """Whether planning ``event`` would upsert its ticket's row (its changes name a fact): only then may
    ``prepare`` make the row. One it cannot read is left to its handler, which refuses it."""
    try:
        return any(c in domain.FACT_FIELDS for c in domain.fact_changes(event.type, event.data))
    except (AttributeError, TypeError, ValueError):
        return False


async def _facts(u: Unit, ticket_no: str, changes: dict[str, Any]) -> dict[str, Any]:
    """The ticket's facts with ``changes`` merged in. In a prepared batch a ticket it holds is merged in
    memory and written once at the flush (``store.save_facts``). ``prepare`` made the rows the batch's
    fact-bearing events would upsert: such a row's facts are NULL until merged (what the upsert leaves of
    the facts its event does not set; to an event planned before it, the same as no row). A ticket the
    batch does not hold (a row a replica committed after the prepare's snapshot; alone, every ticket) is
    upserted at once, which waits for a concurrent insert and locks the row, so its facts are seen; in a
    batch it is then held."""
    held: dict[str, dict[str, Any]] | None = u.memo.get(FACTS)
    if held is not None and ticket_no in held:
        facts = held[ticket_no]
        dirty: set[str] = u.memo[DIRTY]
        if store.merge_facts(facts, changes) and ticket_no not in dirty:
            dirty.add(ticket_no)
            u.stage(store.save_facts, facts)  # written as it is at the flush
        return facts
    facts = await store.update_facts(u.conn, ticket_no=ticket_no, changes=changes)
    if held is not None and facts and any(c in domain.FACT_FIELDS for c in changes):
        held[ticket_no] = facts  # the upsert locked it
    return facts


async def plan_event(rt: Runtime, *, event: CloudEvent, cfg: RulesConfig, now: datetime,
                     wake: Callable[[], None], within: Within = None) -> None:
    """Record what ``event`` teaches about its ticket and plan its deliveries; ``wake`` (the worker) runs
    after the commit when there are any (none for a redelivered event: the inbox stops it)."""
    ticket_no = event.ticket_no or ""
    async with rt.unit(consumer=CONSUMER, event=event, within=within) as u:
        if u.duplicate:
            return
        facts = (await _facts(u, ticket_no, domain.fact_changes(event.type, event.data))
                 if ticket_no else {})  # review.published is about a period, not a ticket
        context = {"ticket_no": ticket_no, "event": event.type, "data": event.data,
                   "ticket": {k: facts.get(k) for k in ("priority", "category", "urgency", "assignee")}}
        planned = domain.plan(event.type, event.data, facts, cfg)
        for p in planned:
            u.stage(store.add_deliveries, store.delivery_row(event_id=event.id, event_type=event.type,
                                                             ticket_no=ticket_no, planned=p, context=context, due=now))
            u.after_commit(metrics.PLANNED.labels(event.type, p.channel).inc)
        if planned:
            u.after_commit(wake)
