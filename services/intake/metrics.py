"""Intake's Prometheus metrics (contract names where the contract fixes them)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import Counter, Gauge

from services.intake.domain import STATUSES

RECEIVED = Counter(
    "helpdesk_intake_received_total", "Intake messages by channel, transport and outcome",
    ["channel", "transport", "outcome"],
)
REJECTED = Counter("helpdesk_intake_rejected_total", "Refused intake input", ["transport"])
COMMANDS = Counter("helpdesk_intake_commands_total", "Lifecycle commands by action and outcome", ["action", "outcome"])
RESOLVED = Counter(
    "helpdesk_tickets_resolved_total", "Resolutions by priority and first-contact", ["priority", "first_contact"]
)
OPEN = Gauge("helpdesk_open_tickets", "Tickets not closed, by status and priority (exact at scrape)",
             ["status", "priority"])


def set_open(rows: Iterable[Mapping[str, Any]]) -> None:
    counts = {(r["status"], r["priority"]): r["n"] for r in rows}
    for status in STATUSES[:-1]:
        for priority in ("P1", "P2", "P3", "P4", "none"):
            OPEN.labels(status, priority).set(counts.get((status, priority), 0))


for _priority in ("P1", "P2", "P3", "P4", "none"):  # series exist from the start (increase() needs it)
    for _fc in ("true", "false"):
        RESOLVED.labels(_priority, _fc)

# access: unmasked contact reads per API key (names from HELPDESK_API_KEYS: a bounded set)
CONTACT_READS = Counter("helpdesk_intake_contact_reads_total", "Unmasked contact reads by caller and outcome",
                        ["caller", "outcome"])
