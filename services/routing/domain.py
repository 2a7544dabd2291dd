"""Routing's pure rules: classification, the priority matrix, escalation targets.

No I/O here: the rule set comes in as an immutable ``RuleSet`` (``config.py``), facts as arguments.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from services.routing.config import PriorityAdjust, Rule, RuleSet

PRIORITIES = ("P1", "P2", "P3", "P4")
URGENCY_RANK = {"low": 0, "normal": 1, "urgent": 2}
COMPLAINT_CATEGORIES = ("complaint", "attitude")


@dataclass(frozen=True)
class Facts:
    """What routing knows of a ticket when it classifies and prioritises it."""

    subject: str | None = None
    description: str | None = None
    kind: str | None = None
    complaint_type: str | None = None
    urgency: str = "normal"
    tier: str = "standard"
    impact: str = "single"
    # records (#14)
    service_type: str | None = None
    entitlement: str | None = None  # warranty.entitlement of ticket.created
    cause: str | None = None  # the diagnosis' cause (re-routing on ticket.diagnosed)

    @property
    def complaint(self) -> bool:
        return self.complaint_type is not None


@dataclass(frozen=True)
class Classification:
    category: str
    rule: str
    urgency: str  # the ticket's urgency, raised when a rule says business stopped
    complaint: bool  # explicit complaint: the message carried one, or a complaint/attitude rule matched
    categories: tuple[str, ...]  # every category a strong text rule matched (cross-department check)


@dataclass(frozen=True)
class Decision:
    category: str
    priority: str
    department: str | None
    rule: str
    priority_rule: str
    cross_department: tuple[str, ...] = ()  # departments when the text spans several

    @property
    def unassignable(self) -> bool:
        return self.department is None or bool(self.cross_department)


# ---- classification ----

@lru_cache(maxsize=4096)
def _keyword_re(keyword: str) -> re.Pattern[str]:
    # ASCII words match at a word start ("refund" in "refunded", not "bug" in "debug"); CJK anywhere.
    if keyword[:1].isascii() and keyword[:1].isalnum():
        return re.compile(r"(?<![a-z0-9])" + re.escape(keyword))
    return re.compile(re.escape(keyword))


@lru_cache(maxsize=1024)
def _pattern_re(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def text_matches(rule: Rule, text: str) -> bool:
    """``text`` is already casefolded."""
    return any(_keyword_re(k).search(text) for k in rule.keywords) or any(
        _pattern_re(p).search(text) for p in rule.patterns
    )


def record_rule(rules: RuleSet, facts: Facts) -> Rule | None:
    """The first rule matching the records facts: the diagnosis' cause, the service type, the entitlement."""
    for rule in rules.rules:
        if (facts.cause and facts.cause in rule.causes) or (
                facts.service_type and facts.service_type in rule.service_types) or (
                facts.entitlement and facts.entitlement in rule.entitlements):
            return rule
    return None


def classify(rules: RuleSet, facts: Facts) -> Classification:
    """Kind first, then complaint type, then the records facts (cause, service type, warranty
    entitlement), then text (strong rules, then weak ones); else ``other``."""
    text = "\n".join(filter(None, (facts.subject, facts.description))).casefold()
    kind = (facts.kind or "").strip().casefold()
    ctype = (facts.complaint_type or "").casefold()
    by_text = [r for r in rules.rules if text_matches(r, text)]
    strong = [r for r in by_text if not r.weak]
    winner = (
        next((r for r in rules.rules if kind and kind in r.kinds), None)
        or next((r for r in rules.rules if ctype and ctype in r.complaint_types), None)
        or record_rule(rules, facts)
        or next(iter(strong), None)
        or next(iter(by_text), None)
    )
    urgency = facts.urgency
    if any(r.urgency == "urgent" for r in by_text):
        urgency = "urgent"
    complaint = facts.complaint or any(r.category in COMPLAINT_CATEGORIES for r in by_text)
    if winner is not None and winner.category in COMPLAINT_CATEGORIES:
        complaint = True
    decided_by_text = winner is not None and winner in by_text and not (
        (kind and kind in winner.kinds) or (ctype and ctype in winner.complaint_types)
        or winner is record_rule(rules, facts))
    overlap = decided_by_text and not winner.exclusive
    categories = tuple(dict.fromkeys(r.category for r in strong)) if overlap else ()
    if winner is None:
        return Classification("other", "default", urgency, complaint, ())
    return Classification(winner.category, winner.name, urgency, complaint, categories)


# ---- priority ----

def _rank(priority: str) -> int:
    return PRIORITIES.index(priority)


def _applies(adj: PriorityAdjust, *, category: str, urgency: str, tier: str, impact: str, complaint: bool) -> bool:
    return (
        (adj.urgency is None or urgency in adj.urgency)
        and (adj.tier is None or tier in adj.tier)
        and (adj.impact is None or impact in adj.impact)
        and (adj.category is None or category in adj.category)
        and (adj.complaint is None or complaint == adj.complaint)
    )


def prioritize(
    rules: RuleSet, *, category: str, urgency: str, tier: str, impact: str, complaint: bool
) -> tuple[str, str]:
    """``(priority, the rule that set it)``: the category's base, then caps, then floors."""
    m = rules.priority
    priority, why = m.base[category], f"base:{category}"
    facts = {"category": category, "urgency": urgency, "tier": tier, "impact": impact, "complaint": complaint}
    for adj in m.at_most:
        if _applies(adj, **facts) and _rank(adj.priority) > _rank(priority):
            priority, why = adj.priority, adj.name
    for adj in m.at_least:
        if _applies(adj, **facts) and _rank(adj.priority) < _rank(priority):
            priority, why = adj.priority, adj.name
    return priority, why


def decide(rules: RuleSet, facts: Facts) -> Decision:
    """Category, priority and department of a new ticket, and whether it spans departments."""
    c = classify(rules, facts)
    priority, why = prioritize(rules, category=c.category, urgency=c.urgency, tier=facts.tier,
                               impact=facts.impact, complaint=c.complaint)
    departments = tuple(dict.fromkeys(d for d in (rules.department_of(x) for x in c.categories) if d))
    cross = departments if len(departments) > 1 else ()
    return Decision(c.category, priority, rules.department_of(c.category), c.rule, why, cross)


# ---- escalation ----

TRIGGERS = ("sla_warning", "sla_breached", "survey_negative", "unassignable", "step_warning", "step_breached")


@dataclass(frozen=True)
class Target:
    level: int
    role: str
    to: str


def role_person(rules: RuleSet, role: str, *, department: str | None, agent_lead: str | None) -> str | None:
    if role == "manager":
        return rules.escalation.manager
    dept = rules.departments.get(department or "")
    if role == "lead":
        return agent_lead or (dept.lead if dept else None)
    return dept.supervisor if dept else None


def target_for_level(rules: RuleSet, level: int, *, department: str | None, agent_lead: str | None) -> Target:
    """The person at ``level`` of the chain; a role with nobody configured passes it one level up."""
    chain = rules.escalation.chain
    level = max(1, min(level, len(chain)))
    for lvl in range(level, len(chain) + 1):
        role = chain[lvl - 1]
        person = role_person(rules, role, department=department, agent_lead=agent_lead)
        if person:
            return Target(lvl, role, person)
    return Target(rules.escalation.level("manager"), "manager", rules.escalation.manager)


def escalation_target(
    rules: RuleSet, trigger: str, *, occurrence: int, department: str | None, agent_lead: str | None
) -> Target:
    """Whom ``trigger``'s ``occurrence``-th firing on a ticket reaches (1-based)."""
    roles = getattr(rules.escalation, trigger)
    role = roles[min(occurrence, len(roles)) - 1]
    return target_for_level(rules, rules.escalation.level(role), department=department, agent_lead=agent_lead)


def requested_target(
    rules: RuleSet, *, current_level: int, to: str | None, department: str | None, agent_lead: str | None,
) -> Target:
    """An agent's escalation request: one level above the ticket's current one (or the named person)."""
    target = target_for_level(rules, current_level + 1, department=department, agent_lead=agent_lead)
    if to:
        return Target(target.level, target.role, to)
    return target


def escalation_reason(trigger: str, data: Mapping[str, object], *, callback_minutes: int) -> str:
    """A human sentence for the escalation (recorded in ``ticket.escalated``)."""
    match trigger:
        case "sla_warning":
            return f"SLA warning: {data.get('metric')} due at {data.get('due_at')} ({data.get('remaining_s')} s left)"
        case "sla_breached":
            return f"SLA breached: {data.get('metric')} was due at {data.get('due_at')}"
        case "survey_negative":
            return (f"negative survey ({data.get('reason')}): call the customer back within "
                    f"{callback_minutes} min and start a remedy")
        case "unassignable":
            return str(data.get("why") or "no department can take the ticket")
        case "step_breached":
            return f"工单{data.get('ticket_no')}已超{limit_text(data.get('limit'))}未完成"  # the seeds' message
        case "step_warning":
            return (f"工单{data.get('ticket_no')}的步骤 {data.get('step')} 即将超时（时限{limit_text(data.get('limit'))}，"
                    f"剩余{round(float(data.get('remaining_s') or 0) / 60)}分钟）")
    return str(data.get("reason") or trigger)


_UNITS = {"s": "秒", "m": "分钟", "h": "小时", "wd": "个工作日"}


def limit_text(limit: object) -> str:
    """A step's limit as the seeds say it: ``24h`` -> ``24小时``, ``3wd`` -> ``3个工作日``."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h|wd)\s*", str(limit or ""))
    if not m:
        return str(limit or "时限")
    number = m.group(1).removesuffix(".0")
    return f"{number}{_UNITS[m.group(2)]}"
