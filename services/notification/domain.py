"""Notification's pure rules: who hears what, retry backoff, quiet hours, rate limits, signatures.

No I/O here: the handler and the worker feed these functions facts and the clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote_plus
from zoneinfo import ZoneInfo

from services.notification.config import QuietHours, RateLimit, RetryConfig, RuleConfig, RulesConfig, StaffConfig
from shared.masking import mask_email, mask_phone

CUSTOMER = "customer"
# Columns of the ticket facts table each event may set.
FACT_FIELDS = ("language", "urgency", "priority", "category", "assignee", "customer_id", "has_phone", "has_email",
               "channel",
               "customer_key", "closed_at")


class DeliveryError(Exception):
    """A send that did not go through; ``permanent`` ones are not retried (bad address, 4xx)."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


@dataclass(frozen=True)
class Planned:
    """One delivery to make: unique per (event, recipient, channel)."""

    recipient: str  # "customer" or "staff:<id>"
    rate_key: str
    channel: str
    template: str
    urgent: bool
    quiet: bool  # subject to quiet hours
    language: str | None


@dataclass(frozen=True)
class Recipient:
    """Where a delivery goes, resolved just before sending (a customer's contact comes from intake)."""

    key: str
    name: str | None = None
    language: str | None = None
    phone: str | None = None
    email: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def masked(self, address: str) -> str:
        """What events and logs may show: the masked address a channel uses (``phone``/``email``),
        or the staff id."""
        if address == "phone" and self.phone:
            return mask_phone(self.phone) or "***"
        if address == "email" and self.email:
            return mask_email(self.email) or "***"
        return self.key.removeprefix("staff:")


def fact_changes(event_type: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """The ticket facts an event teaches us (only what later rules need: language, urgency,
    assignee…); never the customer's contact details, which stay in intake."""
    match event_type:
        case "ticket.created":
            c = data.get("customer") or {}
            return {"language": c.get("language"), "urgency": data.get("urgency"), "customer_id": c.get("id"),
                    "customer_key": data.get("customer_key"),
                    "has_phone": bool(c.get("phone")), "has_email": bool(c.get("email")),
                    "channel": data.get("channel")}
        case "ticket.routed":
            return {"priority": data.get("priority"), "category": data.get("category"),
                    "assignee": data.get("assignee")}
        case "ticket.reprioritized":
            return {"priority": data.get("priority")}
        case "ticket.closed":  # the retention clock starts
            at = data.get("at")
            return {"closed_at": datetime.fromisoformat(at) if isinstance(at, str) else at}
    return {}


def is_urgent(facts: Mapping[str, Any]) -> bool:
    return facts.get("urgency") == "urgent" or facts.get("priority") == "P1"


def matches(rule: RuleConfig, event_type: str, data: Mapping[str, Any]) -> bool:
    return rule.event == event_type and all(data.get(k) == v for k, v in rule.when.items())


def _staff_id(who: str, data: Mapping[str, Any], facts: Mapping[str, Any], cfg: RulesConfig) -> str | None:
    if who == "assignee":
        return facts.get("assignee") or data.get("assignee")
    if who == "target":
        target = data.get("to")
        return target if target in cfg.staff else None
    return who


def staff(cfg: RulesConfig, staff_id: str) -> StaffConfig:
    return cfg.staff.get(staff_id, cfg.default_staff)


def customer_channels(rule: RuleConfig, facts: Mapping[str, Any], cfg: RulesConfig) -> list[str]:
    """The customer's channels for this rule: those they can be reached on, first or all."""
    wanted = rule.channels or cfg.defaults.customer_channels
    known = "has_phone" in facts and facts.get("has_phone") is not None

    def reachable(name: str) -> bool:
        needs = cfg.channels[name].needs
        if not known or needs == "none":
            return True  # ticket.created not seen: try in order, a missing address fails permanently
        return bool(facts.get(f"has_{needs}"))

    usable = [c for c in wanted if reachable(c)]
    return usable[:1] if cfg.defaults.customer_channel_mode == "first" else usable


def _for(who: str, rule: RuleConfig, data: Mapping[str, Any], facts: Mapping[str, Any], cfg: RulesConfig,
         ticket_no: str) -> list[Planned]:
    urgent = rule.urgent or is_urgent(facts)
    if who == CUSTOMER:
        # The customer's keyed hash (their normalised phone, else email): a new ticket does not reset it.
        key = f"customer:{facts.get('customer_key') or facts.get('customer_id') or ticket_no}"
        return [Planned(CUSTOMER, key, ch, rule.template, urgent, rule.quiet, facts.get("language"))
                for ch in customer_channels(rule, facts, cfg)]
    sid = _staff_id(who, data, facts, cfg)
    if not sid:
        return []
    person = staff(cfg, sid)
    return [Planned(f"staff:{sid}", f"staff:{sid}", ch, rule.template, urgent, False, person.language)
            for ch in person.channels]


def plan(event_type: str, data: Mapping[str, Any], facts: Mapping[str, Any], cfg: RulesConfig) -> list[Planned]:
    """Every delivery an event causes under the rules (deduplicated per recipient and channel)."""
    ticket_no = str(data.get("ticket_no") or "")
    out: dict[tuple[str, str], Planned] = {}
    for rule in cfg.rules:
        if not matches(rule, event_type, data):
            continue
        planned = [p for who in rule.to for p in _for(who, rule, data, facts, cfg, ticket_no)]
        if not planned:
            planned = [p for who in rule.fallback for p in _for(who, rule, data, facts, cfg, ticket_no)]
        for p in planned:
            out.setdefault((p.recipient, p.channel), p)
    return list(out.values())


def backoff_s(attempt: int, retry: RetryConfig, rand: Callable[[], float] = random.random) -> float:
    """Delay before the attempt after ``attempt`` (1-based): exponential, capped, with "equal
    jitter" (half fixed, half random) so retries of a burst spread out but never collapse to 0."""
    ceiling = min(retry.max_s, retry.base_s * 2 ** min(attempt - 1, 60))
    return ceiling / 2 + rand() * ceiling / 2


def quiet_until(now: datetime, quiet: QuietHours, tz: ZoneInfo) -> datetime | None:
    """When the quiet period ``now`` falls in ends (an aware datetime), or None outside it.

    The window is local to ``tz`` and may cross midnight (22:00–08:00)."""
    if not quiet.enabled or quiet.start == quiet.end:
        return None
    local = now.astimezone(tz)
    t = local.time().replace(tzinfo=None)
    crosses = quiet.start > quiet.end
    inside = (t >= quiet.start or t < quiet.end) if crosses else (quiet.start <= t < quiet.end)
    if not inside:
        return None
    end_day = local.date() + timedelta(days=1) if crosses and t >= quiet.start else local.date()
    return datetime.combine(end_day, quiet.end, tzinfo=tz)


def rate_limit_for(cfg: RulesConfig, recipient: str) -> int:
    """Messages allowed per window for ``recipient`` (0 = unlimited)."""
    if recipient.startswith("staff:"):
        person = staff(cfg, recipient.removeprefix("staff:"))
        return cfg.rate_limit.staff if person.rate_limit is None else person.rate_limit
    return cfg.rate_limit.customer


def rate_hold_until(*, sent_in_window: int, oldest: datetime | None, limit: int, rate: RateLimit) -> datetime | None:
    """None when one more message fits the window, else when the oldest one leaves it."""
    if limit <= 0 or sent_in_window < limit or oldest is None:
        return None
    return oldest + timedelta(seconds=rate.window_s)


def sign_webhook(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>`` (the Stripe/Slack scheme)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_webhook(secret: str, timestamp: str, body: bytes, signature: str, *, now: float,
                   tolerance_s: float = 300) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent (no replays)."""
    try:
        fresh = abs(now - float(timestamp)) <= tolerance_s
    except ValueError:
        return False
    return fresh and hmac.compare_digest(sign_webhook(secret, timestamp, body), signature)


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk robot signature: base64(HMAC-SHA256(secret, "<ms>\\n<secret>")), URL-encoded."""
    mac = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return quote_plus(base64.b64encode(mac).decode())


def http_failure(status: int, detail: str) -> DeliveryError:
    """4xx (but 408/429) is the request's fault: permanent; 5xx, 408, 429: worth retrying."""
    permanent = 400 <= status < 500 and status not in (408, 429)
    return DeliveryError(f"HTTP {status}: {detail[:200]}", permanent=permanent)
