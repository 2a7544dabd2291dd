"""The SLA service's Prometheus metrics (contract names where the contract fixes them).

``helpdesk_first_response_seconds`` and ``helpdesk_resolution_seconds`` observe **wall-clock**
seconds from ``received_at`` to the first response / the resolution (what the customer waited, as
the DOMAIN review's averages use); business seconds are in each ``sla.met`` event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from services.sla.domain import Announcement

MET = Counter("helpdesk_sla_met_total", "SLA promises kept", ["metric", "priority"])
BREACHED = Counter("helpdesk_sla_breached_total", "SLA promises broken", ["metric", "priority"])
WARNINGS = Counter("helpdesk_sla_warnings_total", "80 % warnings given", ["metric", "priority"])
FIRST_RESPONSE = Histogram(
    "helpdesk_first_response_seconds", "Received to first response (wall seconds)", ["priority", "channel"],
    buckets=(60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 604800),
)
RESOLUTION = Histogram(
    "helpdesk_resolution_seconds", "Received to resolution (wall seconds)", ["priority", "category"],
    buckets=(900, 3600, 14400, 28800, 86400, 172800, 259200, 604800, 1209600),
)
OPEN_TIMERS = Gauge("helpdesk_sla_open_timers", "Clocks with a timer still to fire (exact at scrape)", ["metric"])
LATENESS = Histogram(
    "helpdesk_sla_timer_lateness_seconds", "How long after its due time a timer fired", ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
FIRED = Counter("helpdesk_sla_timers_fired_total", "Timers fired by kind", ["kind"])
HISTOGRAMS = {"first_response": FIRST_RESPONSE, "resolution": RESOLUTION}


def count(announcements: Iterable[Announcement]) -> None:
    for clock, event in announcements:
        if event.type == "sla.met":
            MET.labels(event.metric, clock.priority).inc()  # type: ignore[attr-defined]
        elif event.type == "sla.breached":
            BREACHED.labels(event.metric, clock.priority).inc()  # type: ignore[attr-defined]
        elif event.type == "sla.warning":
            WARNINGS.labels(event.metric, clock.priority).inc()  # type: ignore[attr-defined]


def observe(observations: Iterable[tuple[str, float, Mapping[str, str]]]) -> None:
    for name, value, labels in observations:
        HISTOGRAMS[name].labels(**labels).observe(value)


def set_open(rows: Iterable[Mapping[str, Any]]) -> None:
    counts: dict[str, int] = {}
    for r in rows:  # step clocks (step:<name>) count as one metric, "step"
        metric = "step" if r["metric"].startswith("step:") else r["metric"]
        counts[metric] = counts.get(metric, 0) + r["n"]
    for metric in ("first_response", "resolution", "callback", "eta", "next_update", "revisit", "step"):
        OPEN_TIMERS.labels(metric).set(counts.get(metric, 0))
