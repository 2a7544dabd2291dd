"""The one harness the benchmarks, chaos and the ops tests share: throw-away environments (a fresh
vhost and database, dropped afterwards), services as real processes (one, or the whole ``Stack`` that
can be killed and restarted), an event recorder, an intake publisher, and process CPU/RSS probes."""

from scripts.harness.env import cpu_seconds, environment, percentile, rabbitmqctl, rss_mb, service
from scripts.harness.stack import (
    CUSTOMER_TEMPLATES, FOLLOWED, DeadLetters, IntakePublisher, Recorder, Stack, bench_rules_file, external_id,
    free_port, list_queues, outbox_unsent, skipped, ticket_body,
)

__all__ = [
    "CUSTOMER_TEMPLATES", "FOLLOWED", "DeadLetters", "IntakePublisher", "Recorder", "Stack", "bench_rules_file",
    "cpu_seconds", "external_id", "environment", "free_port", "list_queues", "outbox_unsent", "percentile", "rabbitmqctl",
    "rss_mb", "service", "skipped", "ticket_body",
]
