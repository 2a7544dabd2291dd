"""Settings shared by every service, read from the environment (see README "Configuration")."""

from __future__ import annotations

import re
from datetime import timedelta
from functools import cached_property
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import BeforeValidator, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.auth import Principal, parse_api_keys
from shared.quota import Quotas, parse_quotas
from shared.trust import DEFAULT_USERS, parse_users

SERVICE_PORTS = {"intake": 8001, "routing": 8002, "sla": 8003, "notification": 8004, "survey": 8005,
                 "review": 8006}


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(value: object) -> object:
    """``30d`` / ``12h`` / ``90m`` / ``45s`` as seconds; anything else goes to pydantic's timedelta
    (seconds, ``P30D``, ``HH:MM:SS``)."""
    if isinstance(value, str) and (m := re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", value.lower())):
        return float(m.group(1)) * _UNITS[m.group(2) or "s"]
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]


class Settings(BaseSettings):
    """Connection strings and tuning knobs; every field has the contract's default."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    amqp_url: str = Field("amqp://guest:guest@127.0.0.1:5672/", alias="AMQP_URL")
    database_url: str = Field("postgresql://postgres@127.0.0.1:5432/helpdesk", alias="DATABASE_URL")
    helpdesk_tz: str = Field("Asia/Shanghai", alias="HELPDESK_TZ")
    api_keys: str = Field("", alias="HELPDESK_API_KEYS")
    # Password for the per-service roles (helpdesk_<service>); empty works with trust auth.
    db_role_password: str = Field("", alias="HELPDESK_DB_ROLE_PASSWORD")
    # Create the database, roles and schemas with the admin DATABASE_URL on start (a developer's
    # `make run`); unset: only when the service has no HELPDESK_DB_URL of its own. Deployments run
    # `python -m shared.bootstrap` once instead and give each service only its HELPDESK_DB_URL.
    db_bootstrap: bool | None = Field(None, alias="HELPDESK_DB_BOOTSTRAP")
    # access: the service's own role DSN (postgresql://helpdesk_<service>:pw@host/helpdesk?sslmode=verify-full)
    db_url: str = Field("", alias="HELPDESK_DB_URL")
    # access: "production" refuses default secrets at start (shared.production)
    env: str = Field("development", pattern="^(development|production)$", alias="HELPDESK_ENV")
    db_pool_max: int = Field(20, alias="HELPDESK_DB_POOL_MAX")
    prefetch: int = Field(64, alias="HELPDESK_PREFETCH")
    delivery_limit: int = Field(5, alias="HELPDESK_DELIVERY_LIMIT")
    outbox_batch: int = Field(200, alias="HELPDESK_OUTBOX_BATCH")
    # The process that commits events publishes them right after the commit (their rows leased meanwhile);
    # the relay publishes what a dead process or a failed publish left. Off: the relay publishes everything.
    publish_on_commit: bool = Field(True, alias="HELPDESK_PUBLISH_ON_COMMIT")
    # Deliveries waiting together on a queue are handled in one transaction: at most this many (1: off),
    # and this many such transactions at once per queue and process (more than one lets two batches of
    # one process lock the same tickets in opposite orders: Postgres breaks that deadlock after a second).
    batch_max: int = Field(32, ge=1, alias="HELPDESK_BATCH_MAX")
    batch_parallel: int = Field(1, ge=1, alias="HELPDESK_BATCH_PARALLEL")
    # A batch not yet full waits this long for more deliveries (0: off), on every batched queue but the
    # two a new ticket's first hops wait on (intake.tickets, routing.tickets): fewer, larger transactions.
    # 50 ms: at a steady 50 tickets/s SLA's and notification's statements a ticket fall by half (a batch
    # holds a few tickets' events, not one's), for 50 ms more before a customer's first message.
    batch_linger_ms: float = Field(50.0, ge=0, le=1000, alias="HELPDESK_BATCH_LINGER_MS")
    # The same for the queues that only record what happened, off every ticket's path (review's facts,
    # intake's timeline, survey's schedule): a ticket's events reach them over some tens of milliseconds;
    # half a second lets a batch there hold several tickets' events even at 10 tickets/s (a transaction,
    # a wake-up and an ack for the lot), and a timeline entry shows at most that much later.
    batch_linger_records_ms: float = Field(500.0, ge=0, le=5000, alias="HELPDESK_BATCH_LINGER_RECORDS_MS")
    # A service process's young garbage collection waits for this many container allocations (CPython:
    # 700; 0 keeps that), and what its start made is frozen (``shared.gcpolicy``): 4-12 % of each
    # service's CPU was in the collector, its full collections stopped the loop for 100-550 ms.
    gc_threshold: int = Field(20_000, ge=0, alias="HELPDESK_GC_THRESHOLD")
    max_body_bytes: int = Field(64 * 1024, alias="HELPDESK_MAX_BODY_BYTES")
    log_level: str = Field("INFO", alias="HELPDESK_LOG_LEVEL")
    survey_base_url: str = Field("http://127.0.0.1:8005", alias="SURVEY_BASE_URL")
    # ---- personal data (privacy, README "Data protection") ----
    # Key of the customer_key HMAC: the same in every service and never changed (keys would change).
    customer_key_secret: str = Field("helpdesk-dev-customer-key", alias="HELPDESK_CUSTOMER_KEY_SECRET")
    # helpdesk.dead-letters keeps a dead letter this long ("30d", "12h", "3600", "P30D"), and at most this
    # many (the oldest go first).
    dead_letter_ttl: Duration = Field(timedelta(days=30), alias="HELPDESK_DEAD_LETTER_TTL")
    dead_letter_max: int = Field(100_000, ge=1, alias="HELPDESK_DEAD_LETTER_MAX")
    # Raw contacts of a ticket closed this many days ago are purged (free text keeps its masked form).
    contact_retention_days: int = Field(365, ge=1, alias="HELPDESK_CONTACT_RETENTION_DAYS")
    # Tickets one API key may create over HTTP: "N/S" (N per S seconds) for every key, then
    # "name=N/S" overrides; 0 is unlimited. A key over its quota gets 429 with Retry-After.
    ticket_quota: str = Field("3000/60", alias="HELPDESK_TICKET_QUOTA")
    # Where intake's customer export asks the other services for their part: "name=url,...".
    export_peers: str = Field("notification=http://127.0.0.1:8004,survey=http://127.0.0.1:8005",
                              alias="HELPDESK_EXPORT_PEERS")
    # ---- review: the event log (a RabbitMQ stream every service declares, so it exists before any event)
    # Retention: RabbitMQ's x-max-age units (Y, M, D, h, m, s); and a size cap in bytes (x-max-length-bytes).
    event_log_max_age: str = Field("2Y", pattern=r"^\d+[YMDhms]$", alias="HELPDESK_EVENT_LOG_MAX_AGE")
    event_log_max_bytes: int = Field(200 * 1024**3, gt=0, alias="HELPDESK_EVENT_LOG_MAX_BYTES")
    # ---- access: broker user -> what it may publish (shared.trust; README "Broker users") ----
    broker_users: str = Field(DEFAULT_USERS, alias="HELPDESK_BROKER_USERS")
    contact_reads_per_minute: int = Field(3000, ge=1, alias="HELPDESK_CONTACT_READS_PER_MINUTE")
    # /docs, /redoc and /openapi.json (off by default; Swagger UI then from the package, no CDN)
    docs: bool = Field(False, alias="HELPDESK_DOCS")
    # /metrics per agent (agent ids as label values); off: summed per department
    metrics_agent_labels: bool = Field(False, alias="HELPDESK_METRICS_AGENT_LABELS")

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.helpdesk_tz)

    @property
    def bootstraps(self) -> bool:
        """Whether the service creates its database, role and schema itself on start."""
        return (not self.db_url) if self.db_bootstrap is None else self.db_bootstrap

    @cached_property
    def ticket_quotas(self) -> Quotas:
        return parse_quotas(self.ticket_quota)

    @cached_property
    def export_peer_map(self) -> dict[str, str]:
        pairs = (p.partition("=") for p in self.export_peers.split(",") if p.strip())
        return {name.strip(): url.strip() for name, _, url in pairs if name.strip() and url.strip()}

    @model_validator(mode="after")
    def _quota_parse(self) -> Settings:
        parse_quotas(self.ticket_quota)  # a bad HELPDESK_TICKET_QUOTA refuses the start, naming the entry
        return self

    @model_validator(mode="after")
    def _keys_parse(self) -> Settings:
        parse_api_keys(self.api_keys)  # a bad entry refuses the start, naming it
        parse_users(self.broker_users)
        return self

    @cached_property
    def api_principals(self) -> dict[str, Principal]:
        """Key -> caller (name and roles), parsed from ``name:key:role+role,...``."""
        return parse_api_keys(self.api_keys)

    @cached_property
    def api_key_map(self) -> dict[str, str]:
        """Key -> caller name."""
        return {key: p.name for key, p in self.api_principals.items()}

    def key_with_role(self, role: str) -> str:
        """A service's own key for ``role``: the first that holds it, else the first that may act as it
        (``admin``); "" when none."""
        keys = self.api_principals
        return next((k for k, p in keys.items() if role in p.roles), "") or next(
            (k for k, p in keys.items() if p.has(role)), "")
