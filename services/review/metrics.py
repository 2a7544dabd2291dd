"""Review's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

APPLIED = Counter("helpdesk_review_events_total", "Events folded into the facts", ["type", "outcome"])
IGNORED = Counter("helpdesk_review_events_ignored_total", "Events about no ticket (nothing to fold)", ["type"])
FACTS = Gauge("helpdesk_review_facts", "Fact rows (exact at scrape)", ["kind"])
REPORT_SECONDS = Histogram("helpdesk_review_report_seconds", "Time to compute a review", ["format"],
                           buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30))
SNAPSHOTS = Counter("helpdesk_review_snapshots_total", "Reviews frozen and published", ["trigger"])
