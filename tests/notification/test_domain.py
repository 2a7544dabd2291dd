"""Notification's pure rules: planning, backoff, quiet hours, rate limits, signatures, templates, config."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.notification import domain
from services.notification.config import (
    HERE, QuietHours, RateLimit, RetryConfig, RulesConfig, expand_env, load_rules,
)
from services.notification.domain import DeliveryError, Recipient
from services.notification.templates import Templates

TZ = ZoneInfo("Asia/Shanghai")
CFG = load_rules(HERE / "rules.toml")
TEMPLATES = Templates(HERE / "templates", default_language="zh-CN", tz=TZ)


def plan(type_, data, facts=None, cfg=CFG):  # noqa: ANN001, ANN201
    return [(p.recipient, p.channel, p.template) for p in domain.plan(type_, {"ticket_no": "n1", **data},
                                                                        facts or {}, cfg)]


# ---- who hears what ----

def test_default_rules_file_loads_and_covers_the_issue():
    assert set(CFG.events()) == {"ticket.created", "ticket.responded", "ticket.progressed", "ticket.resolved",
                                 "survey.sent", "ticket.routed", "sla.warning", "ticket.escalated",
                                 "sla.breached", "survey.negative", "review.published", "survey.reminder",
                                 "ticket.customer_replied"}
    assert {c.type for c in CFG.channels.values()} == {"log"}  # local runs send nothing anywhere


def test_customer_hears_of_creation_on_the_first_reachable_channel():
    created = {"customer": {"name": "x", "email": "l***@example.com"}}
    facts = domain.fact_changes("ticket.created", created)
    assert facts["has_phone"] is False and facts["has_email"] is True
    assert plan("ticket.created", created, facts) == [("customer", "email", "ticket_received")]
    assert plan("ticket.created", created, {**facts, "has_phone": True}) == [("customer", "sms", "ticket_received")]
    assert plan("ticket.created", created, {**facts, "has_email": False}) == []  # no way to reach them


def test_only_the_first_response_and_visible_notes_reach_the_customer():
    assert plan("ticket.responded", {"first": True}) == [("customer", "sms", "first_response")]
    assert plan("ticket.responded", {"first": False}) == [("customer", "sms", "reply")]  # every agent reply
    assert plan("ticket.progressed", {"visible_to_customer": False}) == []
    assert plan("ticket.progressed", {"visible_to_customer": True}) == [("customer", "sms", "progress")]
    assert plan("ticket.waiting", {}) == []


def test_staff_recipients_assignee_target_and_fallbacks():
    assert plan("ticket.routed", {"assignee": "agent-7"}) == [("staff:agent-7", "log", "assigned")]
    assert plan("ticket.routed", {"assignee": None}) == []
    assert plan("sla.warning", {}, {"assignee": "agent-7"}) == [("staff:agent-7", "log", "sla_warning")]
    assert plan("sla.warning", {}) == [("staff:supervisor", "wecom", "sla_warning")]
    assert plan("ticket.escalated", {"to": "supervisor"}) == [("staff:supervisor", "wecom", "escalated")]
    assert plan("ticket.escalated", {"to": "nobody-known"}) == [
        ("staff:manager", "wecom", "escalated"), ("staff:manager", "email", "escalated")]
    assert [p.urgent for p in domain.plan("survey.negative", {"ticket_no": "n"}, {}, CFG)] == [True, True]


def test_urgency_and_quiet_flags():
    [p] = domain.plan("ticket.resolved", {"ticket_no": "n"}, {"urgency": "normal", "priority": "P1"}, CFG)
    assert p.urgent and p.quiet and p.rate_key == "customer:n"
    [p] = domain.plan("ticket.resolved", {"ticket_no": "n"}, {"urgency": "low", "customer_id": "c-9"}, CFG)
    assert not p.urgent and p.rate_key == "customer:c-9"
    [p] = domain.plan("sla.breached", {"ticket_no": "n"}, {}, CFG)
    assert not p.quiet  # staff alerts ignore quiet hours


def test_fact_changes_never_carry_contact_details():
    facts = domain.fact_changes("ticket.created", {"customer": {"name": "x", "phone": "138****5678",
                                                                 "email": "a***@b.cn", "language": "en"},
                                                    "urgency": "urgent", "channel": "web"})
    assert set(facts) <= set(domain.FACT_FIELDS) and "138****5678" not in facts.values()
    assert facts["language"] == "en" and facts["urgency"] == "urgent"


# ---- retry backoff ----

@given(attempt=st.integers(1, 100), r=st.floats(0, 1), base=st.floats(0.01, 60), cap=st.floats(1, 3600))
def test_backoff_is_exponential_capped_and_jittered(attempt, r, base, cap):
    retry = RetryConfig(max_attempts=5, base_s=base, max_s=cap)
    ceiling = min(cap, base * 2 ** (attempt - 1))
    d = domain.backoff_s(attempt, retry, rand=lambda: r)
    assert ceiling / 2 - 1e-9 <= d <= ceiling + 1e-9


@given(attempt=st.integers(1, 30))
def test_backoff_never_shrinks_from_one_attempt_to_the_next(attempt):
    retry = RetryConfig(base_s=1, max_s=10_000)
    low = domain.backoff_s(attempt + 1, retry, rand=lambda: 0.0)
    high = domain.backoff_s(attempt, retry, rand=lambda: 1.0)
    assert low >= high or low == retry.max_s / 2


# ---- quiet hours ----

NIGHT = QuietHours(start=dtime(22), end=dtime(8))


def local(h: int, m: int = 0, day: int = 23) -> datetime:
    return datetime(2026, 11, day, h, m, tzinfo=TZ)


def test_quiet_hours_cross_midnight():
    assert domain.quiet_until(local(21, 59), NIGHT, TZ) is None
    assert domain.quiet_until(local(22, 0), NIGHT, TZ) == local(8, day=24)
    assert domain.quiet_until(local(3, 0), NIGHT, TZ) == local(8)
    assert domain.quiet_until(local(8, 0), NIGHT, TZ) is None
    assert domain.quiet_until(local(23).astimezone(UTC), NIGHT, TZ) == local(8, day=24)  # any input zone
    assert domain.quiet_until(local(23), QuietHours(start=dtime(22), end=dtime(8), enabled=False), TZ) is None


@given(minutes=st.integers(0, 7 * 24 * 60), start=st.integers(0, 23), length=st.integers(1, 23))
def test_quiet_until_is_the_next_window_end(minutes, start, length):
    quiet = QuietHours(start=dtime(start), end=dtime((start + length) % 24))
    now = datetime(2026, 11, 23, tzinfo=TZ) + timedelta(minutes=minutes)
    until = domain.quiet_until(now, quiet, TZ)
    if until is None:
        return
    assert now < until <= now + timedelta(hours=length)
    assert until.astimezone(TZ).time() == quiet.end
    assert domain.quiet_until(until, quiet, TZ) is None  # at the end, sending is allowed


# ---- rate limits ----

@given(sent=st.integers(0, 20), limit=st.integers(0, 10), window=st.floats(1, 86400))
def test_rate_hold_until(sent, limit, window):
    oldest = datetime(2026, 11, 23, tzinfo=UTC)
    rate = RateLimit(window_s=window)
    until = domain.rate_hold_until(sent_in_window=sent, oldest=oldest, limit=limit, rate=rate)
    if limit == 0 or sent < limit:
        assert until is None
    else:
        assert until == oldest + timedelta(seconds=window)


def test_rate_limits_per_recipient_kind():
    cfg = RulesConfig.model_validate({"staff": {"busy": {"rate_limit": 2}, "free": {"rate_limit": 0}},
                                      "defaults": {"customer_channels": ["log"]},
                                      "rate_limit": {"customer": 3, "staff": 9}})
    assert domain.rate_limit_for(cfg, "customer") == 3
    assert domain.rate_limit_for(cfg, "staff:busy") == 2
    assert domain.rate_limit_for(cfg, "staff:free") == 0
    assert domain.rate_limit_for(cfg, "staff:someone") == 9


# ---- signatures ----

@given(secret=st.text(min_size=1, max_size=40), body=st.binary(max_size=200))
def test_webhook_signature_roundtrip_and_tamper(secret, body):
    ts = str(int(time.time()))
    sig = domain.sign_webhook(secret, ts, body)
    assert domain.verify_webhook(secret, ts, body, sig, now=time.time())
    assert not domain.verify_webhook(secret, ts, body + b"x", sig, now=time.time())
    assert not domain.verify_webhook(secret + "x", ts, body, sig, now=time.time())
    assert not domain.verify_webhook(secret, ts, body, sig, now=time.time() + 3600)  # replayed later


def test_webhook_signature_known_vector():
    # HMAC-SHA256("secret", "1700000000.{}")
    assert domain.sign_webhook("secret", "1700000000", b"{}") == (
        "sha256=" + __import__("hmac").new(b"secret", b"1700000000.{}", "sha256").hexdigest())


def test_dingtalk_signature_is_url_safe_base64():
    sig = domain.dingtalk_sign("SEC000", 1700000000000)
    assert "+" not in sig and "/" not in sig and sig.endswith("%3D")


def test_http_failures_classified():
    assert domain.http_failure(400, "bad").permanent and domain.http_failure(401, "").permanent
    assert not domain.http_failure(429, "").permanent and not domain.http_failure(503, "").permanent


def test_recipient_masked_per_channel():
    r = Recipient(key="customer", phone="13812345678", email="lilei@example.com")
    assert r.masked("phone") == "138****5678" and r.masked("email") == "l***@example.com"
    assert Recipient(key="staff:agent-7").masked("none") == "agent-7"
    assert CFG.channels["sms"].needs == "phone" and CFG.channels["log"].needs == "none"


# ---- templates ----

CTX = {"ticket_no": "20261123000001", "name": "李雷",
       "data": {"outcome": "resolved", "solution": "更换电源模块 PWR-01", "url": "http://s/1",
                "received_at": "2026-11-23T01:30:00+00:00", "due_at": "2026-11-23T02:00:00+00:00",
                "remaining_s": 900, "metric": "first_response", "note": "n", "level": 1, "to": "x", "reason": "r"}}


@pytest.mark.parametrize("name", ["ticket_received", "first_response", "progress", "resolved", "survey_invite",
                                  "assigned", "sla_warning", "sla_breached", "escalated", "survey_negative"])
@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_every_template_renders_in_both_languages(name, language):
    r = TEMPLATES.render(name, channel="sms", language=language, context=CTX)
    assert r.language == language and "20261123000001" in r.text and "20261123000001" in r.subject
    assert "{{" not in r.text and "Undefined" not in r.text


def test_template_language_channel_variant_and_fallback():
    zh = TEMPLATES.render("ticket_received", channel="sms", language=None, context=CTX)
    assert zh.text.startswith("【售后服务】李雷您好") and "工单号 20261123000001" in zh.text
    en = TEMPLATES.render("ticket_received", channel="email", language="en", context=CTX)
    assert "received 2026-11-23 09:30" in en.text and en.subject == "[Support] Ticket 20261123000001 received"
    fr = TEMPLATES.render("resolved", channel="sms", language="fr", context=CTX)
    assert fr.language == "zh-CN" and "更换电源模块 PWR-01" in fr.text
    with pytest.raises(DeliveryError) as exc:
        TEMPLATES.render("nope", channel="sms", language="en", context=CTX)
    assert exc.value.permanent


# ---- config ----

def test_env_expansion():
    doc = {"a": "${X}", "b": ["${Y:-dflt}", 3], "c": {"d": "k=${X}&z"}}
    assert expand_env(doc, {"X": "1"}) == {"a": "1", "b": ["dflt", 3], "c": {"d": "k=1&z"}}


def test_config_refuses_unknown_channels_and_bad_endpoints(tmp_path: Path):
    with pytest.raises(ValidationError, match="channels used but not configured: .*pager"):
        RulesConfig.model_validate({"staff": {"a": {"channels": ["pager"]}}})
    with pytest.raises(ValidationError, match="webhook channel needs secret"):
        RulesConfig.model_validate({"channels": {"log": {"type": "log"}, "w": {"type": "webhook", "url": "http://x"}},
                                    "defaults": {"customer_channels": ["log"]}})
    f = tmp_path / "r.toml"
    f.write_text('[channels.sms]\ntype = "sms"\nurl = "${SMS_URL}"\n[channels.log]\ntype="log"\n'
                 '[channels.email]\ntype="log"\n', encoding="utf-8")
    assert load_rules(f, {"SMS_URL": "http://gw"}).channels["sms"].url == "http://gw"
    with pytest.raises(ValidationError, match="needs url"):
        load_rules(f, {})
