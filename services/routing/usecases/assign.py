"""Routing's ticket use cases: route a new ticket, re-route, release, assign from the queue.

Each is one unit of work (``rt.unit``) holding the state change, its events (outbox) and its inbox row. Capacity is
safe with any number of replicas: every assignment and release in a department runs with that
department's row locked (``store.lock_departments``), and queued tickets are taken with
``FOR UPDATE SKIP LOCKED``. Lock order is always ticket row, then departments by name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from collections.abc import Iterable, Mapping
from typing import Any

import asyncpg

from services.routing import domain, store
from services.routing.config import RuleSet
from services.routing.usecases import metered
from services.routing.usecases.escalate import NotYetKnown, escalate
from services.routing.events import Routed
from services.routing.metrics import Pending
from shared.envelope import CloudEvent
from shared.errors import DomainError
from shared.events import TicketCreated, TicketDiagnosed, TicketEscalationRequested, TicketReprioritized
from shared.runtime import Runtime
from shared.unit import Tx, Unit, Within

SERVICE = "routing"
CONSUMER = "tickets"

log = logging.getLogger(__name__)


async def emit_routed(u: Unit, t: Mapping[str, Any], pending: Pending, *, reason: str,
                      priority_rule: str | None = None) -> None:
    state = t["state"]
    assignee = t["assignee"] if state == "assigned" else None
    u.emit(t["ticket_no"], Routed(
        category=t["category"], priority=t["priority"], department=t["department"], assignee=assignee,
        rule=t["rule"], reason=reason, state=state, priority_rule=priority_rule, rules_version=t["rules_version"],
    ))
    history(u, t, reason, agent=assignee)
    pending.decision(t["category"], t["priority"], t["rule"], reason, state)


def history(u: Unit, t: Mapping[str, Any], action: str, *, agent: str | None) -> None:
    """Stage a row of the ticket's assignment history (one insert for the whole transaction)."""
    u.stage(store.add_assignments, (t["ticket_no"], action, t["department"], agent, t["category"], t["priority"],
                                    t["rule"]))


async def lock(u: Unit, names: Iterable[str | None]) -> None:
    """Lock departments (``store.lock_departments``) once per transaction: a batch's units that place
    tickets in the same department take its row lock once, and keep it until the commit anyway."""
    held: set[str] = u.memo.setdefault("routing.locked", set())
    wanted = {n for n in names if n} - held
    if wanted:
        await store.lock_departments(u.conn, names=wanted)
        held |= wanted


async def _assign(u: Unit, ticket_no: str, agent_id: str) -> asyncpg.Record:
    await store.take_load(u.conn, agent_id=agent_id)
    return await store.update_ticket(u.conn, ticket_no=ticket_no, state="assigned", assignee=agent_id, queued_at=None)


async def drain(u: Unit, department: str | None, pending: Pending,
                emit: Mapping[str, Mapping[str, Any]] | None = None) -> list[str]:
    """Assign queued tickets of ``department``, oldest first, while an agent has room. The department
    must be locked. Emits ``ticket.routed`` for each: reason ``dequeued``, unless ``emit`` says, or the
    ticket is one of the batch's new ones its own unit has not placed yet (announced as ``created``)."""
    return (await _drain(u, department, pending, emit))[0]


async def _drain(u: Unit, department: str | None, pending: Pending,
                 emit: Mapping[str, Mapping[str, Any]] | None) -> tuple[list[str], bool]:
    """``drain``, and whether the department has anybody on its roster (read by its last assignment
    statement, with the department locked: the roster only changes so)."""
    assigned: list[str] = []
    more = staffed = bool(department)
    prepared: dict[str, Prepared] = u.memo.get(PREPARED, {})  # a batch's new tickets not placed by their units yet
    while more:
        # one statement per assignment; it also says whether more are queued, so an emptied queue (the
        # common case after a placement) ends the loop without another round trip
        t, more, staffed = await store.assign_next(u.conn, department=department)  # type: ignore[arg-type]
        if t is None:
            break
        no = t["ticket_no"]
        how = (emit or {}).get(no)
        if how is None and (p := prepared.get(no)) is not None and not p.placed:
            p.placed, how = True, announced(p.new.decision)  # as its own unit would have announced it
        await emit_routed(u, t, pending, **(how or {"reason": "dequeued"}))
        assigned.append(no)
    return assigned, staffed


async def _ticket(u: Unit, ticket_no: str) -> asyncpg.Record:
    t = await store.get_ticket(u.conn, ticket_no=ticket_no, for_update=True)
    if t is None:
        raise NotYetKnown(f"routing has no ticket {ticket_no} (yet)")
    return t


PREPARED = "routing.prepared"  # memo: ticket_no -> a new ticket the batch's prepare inserted (``Prepared``)


class New:
    """A ``ticket.created`` decoded and decided: the payload, the classification facts, the decision,
    and routing's row for it (``row``)."""

    def __init__(self, rules: RuleSet, event: CloudEvent) -> None:
        self.event, self.no, self.rules_version = event, event.ticket_no, rules.version
        data = self.data = TicketCreated.model_validate(event.data)
        complaint = self.complaint = data.complaint or None
        self.facts = domain.Facts(subject=data.subject, description=data.description, kind=data.kind,
                                  complaint_type=(complaint or {}).get("type") if complaint else None,
                                  urgency=data.urgency, tier=data.customer.tier, impact=data.impact,
                                  service_type=data.service_type,
                                  entitlement=data.warranty.entitlement if data.warranty else None)
        d = self.decision = domain.decide(rules, self.facts)
        self.department = None if d.cross_department else d.department

    def row(self) -> dict[str, Any]:
        """Routing's row for the new ticket (``store.insert_tickets``)."""
        data, d = self.data, self.decision
        return {"ticket_no": self.no, "channel": data.channel, "tier": data.customer.tier,
                "urgency": self.facts.urgency, "impact": data.impact, "complaint": bool(self.complaint),
                "category": d.category, "priority": d.priority, "department": self.department, "rule": d.rule,
                "state": "queued" if self.department else "unassigned", "rules_version": self.rules_version,
                "queued_at": self.event.time if self.department else None}


@dataclass
class Prepared:
    """A batch's new ticket inserted before the handlers ran: as decided, its row as inserted, and whether
    an earlier unit's drain assigned (and announced) it already."""

    new: New
    row: asyncpg.Record
    placed: bool = False


async def prepare_created(rules: RuleSet, events: list[CloudEvent], tx: Tx) -> None:
    """A batch's new tickets inserted in one statement before its handlers run (``route_created`` then
    finds its row in the memo). Messages this consumer already processed are left out (their tickets
    exist). Until its own handler places it, an inserted ticket is queued like any other: a drain of an
    earlier unit that assigns it announces it as that handler would have (``drain``), and the handler
    then has nothing left to do."""
    done = await tx.processed(CONSUMER)  # the inbox read the handlers' claims then reuse
    new: dict[str, New] = {}
    for event in events:
        if event.type == "ticket.created" and event.ticket_no and event.id not in done and event.ticket_no not in new:
            try:
                new[event.ticket_no] = New(rules, event)
            except (ValueError, DomainError):  # not valid: its handler refuses it alone
                continue
    if new:
        rows = await store.insert_tickets(tx.conn, [n.row() for n in new.values()])
        tx.memo[PREPARED] = {no: Prepared(n, rows[no]) for no, n in new.items() if no in rows}


async def route_created(rt: Runtime, rules: RuleSet, event: CloudEvent, *, within: Within = None) -> None:
    """Classify, prioritise and assign a new ticket (or queue it, or escalate it when no department can)."""
    prepared: dict[str, Prepared] = within.memo.get(PREPARED, {}) if within is not None else {}
    p = prepared.get(event.ticket_no or "")
    if p is not None and p.new.event.id != event.id:
        p = None  # another ticket.created for a ticket the batch inserted: its handler finds the row taken
    n = p.new if p is not None else New(rules, event)
    async with metered(rt, consumer=CONSUMER, event=event, within=within) as (u, pending):
        if u.duplicate:
            return
        d, no = n.decision, n.no
        if p is not None:
            del prepared[no]  # this unit places it now (or an earlier drain did)
            row = p.row
        else:
            row = await store.insert_ticket(u.conn, **n.row())
            if row is None:
                return  # another ticket.created for the same ticket (a different event id): routed already
        pending.created(n.data.channel, d.category)
        if p is None or not p.placed:
            await _place_new(u, rules, row, d, n.department, pending)
    log.info("ticket routed", extra={"ticket_no": no, "category": d.category, "priority": d.priority,
                                     "department": d.department, "rule": d.rule})


async def _place_new(u: Unit, rules: RuleSet, row: asyncpg.Record, d: domain.Decision, department: str | None,
                     pending: Pending) -> None:
    """Assign the new ticket (oldest first in its department), or leave it queued, or escalate it.
    ``row`` is the ticket as inserted: a drain that did not assign it left it unchanged."""
    no = row["ticket_no"]
    await lock(u, [department])
    if department:
        # the drain first: it assigns the ticket (the common case), or says whether the roster has anybody:
        # an empty one is escalated, a full one leaves the ticket queued
        assigned, staffed = await _drain(u, department, pending, {no: announced(d)})
        if no in assigned:
            return
        if staffed:
            await _emit_new(u, row, pending, d)
            return
    if department:
        why = f"department {department} has nobody on its roster; queued there"
    elif d.cross_department:
        why = f"cross-department ({', '.join(d.cross_department)}): the manager coordinates"
    else:
        why = f"no department handles category {d.category}"
    await _emit_new(u, row, pending, d)
    await escalate(u, rules, no, "unassignable", {"why": why}, pending)


def announced(d: domain.Decision) -> dict[str, Any]:
    """How a new ticket's first ``ticket.routed`` reads (``emit_routed``'s reason and priority rule)."""
    return {"reason": "created", "priority_rule": d.priority_rule}


async def _emit_new(u: Unit, row: asyncpg.Record, pending: Pending, d: domain.Decision) -> None:
    await emit_routed(u, row, pending, **announced(d))


async def release(rt: Runtime, event: CloudEvent, *, within: Within = None) -> None:
    """``ticket.resolved`` / ``ticket.closed``: the assignee's load drops; the freed slot takes the
    department's oldest queued ticket."""
    async with metered(rt, consumer=CONSUMER, event=event, within=within) as (u, pending):
        if u.duplicate:
            return
        t = await _ticket(u, event.ticket_no)
        if t["state"] == "released":
            return
        await store.update_ticket(u.conn, ticket_no=t["ticket_no"], state="released", queued_at=None)
        history(u, t, event.type.removeprefix("ticket."), agent=t["assignee"])
        if t["state"] == "assigned":
            agent_dept = await store.agent_department(u.conn, agent_id=t["assignee"])
            await lock(u, [t["department"], agent_dept])
            await store.drop_load(u.conn, agent_id=t["assignee"])
            for dept in sorted({x for x in (t["department"], agent_dept) if x}):
                await drain(u, dept, pending)


async def reprioritize(rt: Runtime, event: CloudEvent, *, within: Within = None) -> None:
    """``ticket.reprioritized``: the new priority, same owner; announced as ``ticket.routed``."""
    data = TicketReprioritized.model_validate(event.data)
    async with metered(rt, consumer=CONSUMER, event=event, within=within) as (u, pending):
        if u.duplicate:
            return
        t = await _ticket(u, event.ticket_no)
        if t["state"] == "released" or t["priority"] == data.priority:
            return
        t = await store.update_ticket(u.conn, ticket_no=t["ticket_no"], priority=data.priority)
        await emit_routed(u, t, pending, reason="reprioritized", priority_rule=f"manual:{data.actor}")


async def reopen(rt: Runtime, rules: RuleSet, event: CloudEvent, *, within: Within = None) -> None:
    """``ticket.reopened``: back to its last assignee when they have room, else queued (oldest first)."""
    async with metered(rt, consumer=CONSUMER, event=event, within=within) as (u, pending):
        if u.duplicate:
            return
        t = await _ticket(u, event.ticket_no)
        if t["state"] != "released":
            return
        no, dept = t["ticket_no"], t["department"]
        if dept is None:
            await emit_routed(u, await store.update_ticket(u.conn, ticket_no=no, state="unassigned"), pending,
                              reason="reopened")
            await escalate(u, rules, no, "unassignable", {"why": "reopened; no department can take it"}, pending)
        else:
            await _requeue(u, t, dept, pending, reason="reopened", prefer=t["assignee"])


async def _requeue(u: Unit, t: Mapping[str, Any], dept: str, pending: Pending, *, reason: str,
                   prefer: str | None) -> None:
    """Put ``t`` in ``dept``: to ``prefer`` if they have room in it, else the queue (then drain)."""
    no = t["ticket_no"]
    await lock(u, [dept, await store.agent_department(u.conn, agent_id=prefer)])
    agent = await store.agent_can_take(u.conn, agent_id=prefer) if prefer else None
    if agent is not None and agent["department"] == dept:
        await store.update_ticket(u.conn, ticket_no=no, department=dept)
        await emit_routed(u, await _assign(u, no, agent["id"]), pending, reason=reason)
        return
    await store.update_ticket(u.conn, ticket_no=no, state="queued", department=dept,
                              queued_at=await store.clock_now(u.conn))
    if no not in await drain(u, dept, pending, emit={no: {"reason": reason}}):
        await emit_routed(u, await store.get_ticket(u.conn, ticket_no=no), pending, reason=reason)


async def request_escalation(rt: Runtime, rules: RuleSet, event: CloudEvent, *, within: Within = None) -> None:
    """``ticket.escalation_requested``: one level up the chain (or the named person); a named known
    department takes the ticket over (it is re-queued there)."""
    data = TicketEscalationRequested.model_validate(event.data)
    async with metered(rt, consumer=CONSUMER, event=event, within=within) as (u, pending):
        if u.duplicate:
            return
        t = await _ticket(u, event.ticket_no)
        info: dict[str, Any] = {"reason": data.reason, "to": data.to, "department": data.department}
        target_dept = data.department
        if target_dept and target_dept not in rules.departments:
            info["reason"] = f"{data.reason} (asked for unknown department {target_dept}: the manager decides)"
            info["unknown_department"] = True
        elif target_dept and target_dept != t["department"] and t["state"] != "released":
            await _transfer(u, t, target_dept, pending)
        await escalate(u, rules, t["ticket_no"], "requested", info, pending)


async def _transfer(u: Unit, t: Mapping[str, Any], dept: str, pending: Pending, *,
                    reason: str = "transferred") -> None:
    """Move ``t`` to ``dept``: its current assignee's slot is freed (and refilled from their queue)."""
    old_agent = t["assignee"] if t["state"] == "assigned" else None
    old_dept = await store.agent_department(u.conn, agent_id=old_agent)
    await lock(u, [t["department"], old_dept, dept])
    await store.update_ticket(u.conn, ticket_no=t["ticket_no"], state="queued", department=dept)
    if old_agent:
        await store.drop_load(u.conn, agent_id=old_agent)
    await _requeue(u, t, dept, pending, reason=reason, prefer=None)
    for other in sorted({x for x in (t["department"], old_dept) if x and x != dept}):
        await drain(u, other, pending)


async def diagnosed(rt: Runtime, rules: RuleSet, event: CloudEvent, *, within: Within = None) -> None:
    """``ticket.diagnosed`` (records #14): a rule matching the diagnosis' ``cause`` re-classifies the
    ticket; when that category belongs to another department the ticket is transferred there
    (``ticket.routed``, reason ``diagnosed``). Otherwise nothing changes."""
    data = TicketDiagnosed.model_validate(event.data)
    rule = domain.record_rule(rules, domain.Facts(cause=data.cause))
    async with metered(rt, consumer=CONSUMER, event=event, within=within) as (u, pending):
        if u.duplicate:
            return
        t = await _ticket(u, event.ticket_no)
        if rule is None or t["state"] == "released" or rule.category == t["category"]:
            return
        dept = rules.department_of(rule.category)
        await store.update_ticket(u.conn, ticket_no=t["ticket_no"], category=rule.category, rule=rule.name)
        t = await store.get_ticket(u.conn, ticket_no=t["ticket_no"])
        if dept and dept != t["department"]:
            await _transfer(u, t, dept, pending, reason="diagnosed")
        else:
            await emit_routed(u, t, pending, reason="diagnosed")
