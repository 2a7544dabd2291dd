"""Notification's Prometheus metrics (``helpdesk_notifications_total`` is the contract's)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

NOTIFICATIONS = Counter(
    "helpdesk_notifications_total", "Notifications by channel and final outcome (sent/failed)", ["channel", "outcome"]
)
ATTEMPTS = Counter(
    "helpdesk_notification_attempts_total", "Send attempts by channel and result (sent/retry/failed)",
    ["channel", "result"],
)
HELD = Counter("helpdesk_notification_held_total", "Deliveries held back by reason", ["reason"])
PLANNED = Counter("helpdesk_notification_planned_total", "Deliveries planned from events", ["event", "channel"])
SEND_SECONDS = Histogram(
    "helpdesk_notification_send_seconds", "Time one send attempt took", ["channel"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DELIVERIES = Gauge("helpdesk_notification_deliveries", "Deliveries in the log by channel and status (at scrape)",
                   ["channel", "status"])


def init(channels: Iterable[str]) -> None:
    """Expose every channel's counters at 0 from the start (rate() needs a first sample)."""
    for ch in channels:
        for outcome in ("sent", "failed"):
            NOTIFICATIONS.labels(ch, outcome)


def set_deliveries(rows: Iterable[Mapping[str, Any]], channels: Iterable[str]) -> None:
    counts = {(r["channel"], r["status"]): r["n"] for r in rows}
    for ch in set(channels) | {c for c, _ in counts}:
        for status in ("pending", "sent", "failed"):
            DELIVERIES.labels(ch, status).set(counts.get((ch, status), 0))
