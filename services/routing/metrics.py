"""Routing's Prometheus metrics, and ``Pending``: counts made only once their transaction commits."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import Counter, Gauge

from shared.events import CATEGORIES
from shared.messages import CHANNELS

TICKETS_CREATED = Counter(
    "helpdesk_tickets_created_total", "Tickets, counted once when routing first routes them", ["channel", "category"]
)
# Series exist from the start, so increase() counts a combination's first ticket too.
for _channel in CHANNELS:
    for _category in CATEGORIES:
        TICKETS_CREATED.labels(_channel, _category)

DECISIONS = Counter(
    "helpdesk_routing_decisions_total", "ticket.routed decisions by category, priority, rule and reason",
    ["category", "priority", "rule", "reason", "state"],
)
ESCALATIONS = Counter("helpdesk_routing_escalations_total", "ticket.escalated by trigger and level",
                      ["trigger", "level"])
BACKLOG = Gauge("helpdesk_routing_unassigned_backlog",
                "Tickets without an owner (exact at scrape): queued per department, or unassigned ('-')",
                ["department", "state"])
AGENT_LOAD = Gauge("helpdesk_routing_agent_load", "Open tickets held per agent (exact at scrape)",
                   ["agent", "department"])
AGENT_CAPACITY = Gauge("helpdesk_routing_agent_capacity", "Capacity per agent (0 when unavailable)",
                       ["agent", "department"])


class Pending:
    """Metric increments of one transaction, applied by ``apply`` once it committed (register it with
    ``u.after_commit(pending.apply)``: a rolled back, retried message must not count twice)."""

    def __init__(self) -> None:
        self._created: list[tuple[str, str]] = []
        self._decisions: list[tuple[str, str, str, str, str]] = []
        self._escalations: list[tuple[str, str]] = []

    def created(self, channel: str, category: str) -> None:
        self._created.append((channel, category))

    def decision(self, category: str, priority: str, rule: str, reason: str, state: str) -> None:
        self._decisions.append((category, priority, rule, reason, state))

    def escalation(self, trigger: str, level: int) -> None:
        self._escalations.append((trigger, str(level)))

    def apply(self) -> None:
        for labels in self._created:
            TICKETS_CREATED.labels(*labels).inc()
        for labels in self._decisions:
            DECISIONS.labels(*labels).inc()
        for labels in self._escalations:
            ESCALATIONS.labels(*labels).inc()


def set_backlog(rows: Iterable[Mapping[str, Any]], departments: Iterable[str]) -> None:
    BACKLOG.clear()
    for dept in departments:
        BACKLOG.labels(dept, "queued").set(0)
    BACKLOG.labels("-", "unassigned").set(0)
    for r in rows:
        BACKLOG.labels(r["department"], r["state"]).set(r["n"])


ALL_AGENTS = "all"  # the agent label when agent ids are not exported (HELPDESK_METRICS_AGENT_LABELS unset)


def set_agents(rows: Iterable[Mapping[str, Any]], *, per_agent: bool = False) -> None:
    """Load and capacity per agent with ``per_agent`` (agent ids become label values), else summed per
    department under ``agent="all"``: /metrics then names no one."""
    AGENT_LOAD.clear()
    AGENT_CAPACITY.clear()
    sums: dict[str, list[int]] = {}
    for r in rows:
        capacity = r["capacity"] if r["available"] else 0
        if per_agent:
            AGENT_LOAD.labels(r["id"], r["department"]).set(r["load"])
            AGENT_CAPACITY.labels(r["id"], r["department"]).set(capacity)
        else:
            total = sums.setdefault(r["department"], [0, 0])
            total[0] += r["load"]
            total[1] += capacity
    for department, (load, capacity) in sums.items():
        AGENT_LOAD.labels(ALL_AGENTS, department).set(load)
        AGENT_CAPACITY.labels(ALL_AGENTS, department).set(capacity)
