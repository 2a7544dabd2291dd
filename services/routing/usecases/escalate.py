"""Escalation use cases: ``ticket.escalated`` for SLA warnings and breaches, negative surveys,
agents' requests and tickets no department can take. Whom each reaches is config (``[escalation]``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services.routing import domain, store
from services.routing.config import RuleSet
from services.routing.events import Escalated
from services.routing.metrics import Pending
from services.routing.usecases import metered
from shared.envelope import CloudEvent
from shared.events import SlaBreached, SlaWarning, SurveyNegative
from shared.runtime import Runtime
from shared.unit import Unit, Within

SERVICE = "routing"
CONSUMER = "signals"
SIGNALS = {  # event type -> (trigger, payload model, the ticket's counter of that trigger)
    "sla.warning": ("sla_warning", SlaWarning, "warnings"),
    "sla.breached": ("sla_breached", SlaBreached, "breaches"),
    "survey.negative": ("survey_negative", SurveyNegative, "negatives"),
}


class NotYetKnown(RuntimeError):
    """An event about a ticket routing has not seen created yet: retried (its ``ticket.created`` may be
    in flight on another replica), dead-lettered by the queue's delivery limit if it never comes."""


async def escalate(u: Unit, rules: RuleSet, ticket_no: str, trigger: str, info: dict[str, Any],
                   pending: Pending, *, occurrence: int = 1) -> domain.Target:
    """Stage ``ticket.escalated`` for ``trigger`` on a ticket row the caller has locked."""
    t = await store.get_ticket(u.conn, ticket_no=ticket_no)
    agent = await store.get_agent(u.conn, agent_id=t["assignee"]) if t["assignee"] else None
    lead = agent["lead"] if agent else None
    where = {"department": t["department"], "agent_lead": lead}
    if trigger == "requested":
        target = domain.requested_target(rules, current_level=t["escalation_level"], to=info.get("to"), **where)
        if info.get("unknown_department"):
            target = domain.target_for_level(rules, rules.escalation.level("manager"), **where)
        reason = str(info["reason"])
    else:
        target = domain.escalation_target(rules, trigger, occurrence=occurrence, **where)
        reason = domain.escalation_reason(trigger, info, callback_minutes=rules.escalation.callback_minutes)
    now = datetime.now(UTC)
    due_at = now + timedelta(minutes=rules.escalation.callback_minutes) if trigger == "survey_negative" else None
    u.emit(ticket_no, Escalated(
        level=target.level, to=target.to, reason=reason, role=target.role, trigger=trigger,
        department=t["department"], due_at=due_at, step=info.get("step") if trigger.startswith("step_") else None,
    ))
    await store.add_escalation(u.conn, ticket_no=ticket_no, trigger=trigger, level=target.level, role=target.role,
                               to=target.to, reason=reason, due_at=due_at)
    if target.level > t["escalation_level"]:
        await store.update_ticket(u.conn, ticket_no=ticket_no, escalation_level=target.level)
    pending.escalation(trigger, target.level)
    return target


async def on_signal(rt: Runtime, rules: RuleSet, event: CloudEvent, *, within: Within = None) -> None:
    """``sla.warning`` -> the assignee's lead; ``sla.breached`` -> the supervisor, then the manager on a
    second breach; ``survey.negative`` -> the manager, who calls back within the configured time."""
    trigger, model, counter = SIGNALS[event.type]
    data = model.model_validate(event.data)
    step = event.type in ("sla.warning", "sla.breached") and event.data.get("metric") == "step"
    if step:  # records (#14): a step overdue goes to the handler's superior; the SLA ladder is not climbed
        trigger = "step_" + trigger.removeprefix("sla_")
    async with metered(rt, consumer=CONSUMER, event=event, within=within) as (u, pending):
        if u.duplicate:
            return
        t = await store.get_ticket(u.conn, ticket_no=event.ticket_no, for_update=True)
        if t is None:
            raise NotYetKnown(f"routing has no ticket {event.ticket_no} (yet)")
        occurrence = 1 if step else t[counter] + 1
        if not step:
            await store.update_ticket(u.conn, ticket_no=t["ticket_no"], **{counter: occurrence})
        await escalate(u, rules, t["ticket_no"], trigger, {**data.model_dump(mode="json"), **event.data},
                       pending, occurrence=occurrence)
