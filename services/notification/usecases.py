"""Turn an event into deliveries: one unit of work with the inbox claim, the ticket facts and the
planned rows. Nothing is sent here; the worker sends after the broker message is acked."""

from __future__ import annotations

from datetime import datetime

from collections.abc import Callable

from services.notification import domain, metrics, store
from services.notification.config import RulesConfig
from shared.envelope import CloudEvent
from shared.runtime import Runtime
from shared.unit import Within

CONSUMER = "notification.events"


async def plan_event(rt: Runtime, *, event: CloudEvent, cfg: RulesConfig, now: datetime,
                     wake: Callable[[], None], within: Within = None) -> None:
    """Record what ``event`` teaches about its ticket and plan its deliveries; ``wake`` (the worker) runs
    after the commit when there are any (none for a redelivered event: the inbox stops it)."""
    ticket_no = event.ticket_no or ""
    async with rt.unit(consumer=CONSUMER, event=event, within=within) as u:
        if u.duplicate:
            return
        facts = (await store.update_facts(u.conn, ticket_no=ticket_no,
                                          changes=domain.fact_changes(event.type, event.data))
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
