"""The progress page's pure rules: the token, when a link opens, what the customer sees (masked, no
internal notes), the promised times, and the limits on what the customer may do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.intake import progress_domain as pd
from services.notification import domain as ndomain
from services.notification.config import load_rules
from shared.errors import Conflict, DomainError

T0 = datetime(2026, 12, 1, 20, 3, tzinfo=UTC)
NO = "20261202000001"


def ev(type_: str, minutes: float = 0, **data) -> dict:  # noqa: ANN003
    return {"type": type_, "time": T0 + timedelta(minutes=minutes), "data": {"ticket_no": NO, **data}}


def test_token_is_256_bits_unguessable_and_stable():
    salt = pd.new_salt()
    token = pd.make_token("secret", salt, NO)
    assert len(token) == 43 and pd.plausible_token(token)
    assert token == pd.make_token("secret", salt, NO)
    assert token != pd.make_token("secret", pd.new_salt(), NO) != pd.make_token("other", salt, NO)
    assert len(pd.token_hash(token)) == 32 and token.encode() not in pd.token_hash(token)
    assert not pd.plausible_token(token[:-1]) and not pd.plausible_token(token[:-1] + "/")


def test_link_opens_until_ttl_after_closure():
    ttl = timedelta(days=30)
    assert pd.link_state(None, now=T0, ttl=ttl) == "unknown"
    assert pd.link_state({"status": "resolved", "closed_at": None}, now=T0, ttl=ttl) == "open"
    closed = {"status": "closed", "closed_at": T0}
    assert pd.link_state(closed, now=T0 + ttl, ttl=ttl) == "open"
    assert pd.link_state(closed, now=T0 + ttl + timedelta(seconds=1), ttl=ttl) == "expired"


def test_timeline_shows_the_customer_only_what_is_theirs_masked():
    events = [
        ev("ticket.created", 0, received_at=T0.isoformat(), subject="无法开机"),
        ev("ticket.routed", 1, assignee="eng-wang", department="technical"),
        ev("ticket.progressed", 2, note="内部：客户语气不好", visible_to_customer=False),
        ev("ticket.progressed", 3, note="已寄出备件，快递员电话 13812345678", visible_to_customer=True),
        ev("sla.warning", 4, metric="resolution"),
        ev("ticket.escalation_requested", 5, actor="eng-wang", reason="needs a specialist"),
        ev("ticket.escalation_requested", 6, actor="customer", reason="customer"),
        ev("ticket.reopened", 7, actor="lead", reason="内部复核"),
        ev("ticket.customer_replied", 8, text="好的 li.lei@example.com"),
    ]
    items = pd.visible_timeline(events)
    assert [i.kind for i in items] == ["you", "reopened", "callback", "progress", "received"]
    text = " ".join(i.text or "" for i in items)
    assert "138****5678" in text and "l***@example.com" in text and "内部" not in text


def test_promised_times_follow_the_step():
    sla = {"first_response": {"state": "running", "due_at": (T0 + timedelta(hours=2)).isoformat()},
           "resolution": {"state": "warning", "due_at": (T0 + timedelta(hours=48)).isoformat()}}
    p = pd.promise("assigned", [], sla, now=T0)
    assert (p.step, p.step_due, p.resolution_due) == ("assigned", T0 + timedelta(hours=2), T0 + timedelta(hours=48))
    eta = T0 + timedelta(hours=24)
    promised = [ev("ticket.progressed", 1, note="预计24小时内完成维修", visible_to_customer=True, eta=eta.isoformat())]
    p = pd.promise("in_progress", promised, sla, now=T0)
    assert (p.step, p.step_due, p.resolution_due, p.eta) == ("handling", eta, eta, eta)
    resolved = promised + [ev("ticket.resolved", 2), ev("ticket.reopened", 3)]
    assert pd.promise("in_progress", resolved, sla, now=T0).eta is None
    visit = T0 + timedelta(days=1)
    p = pd.promise("in_progress", [ev("ticket.scheduled", 1, appointment_at=visit.isoformat())], sla, now=T0)
    assert (p.step, p.step_due) == ("appointment", visit)
    assert pd.promise("waiting", [], sla, now=T0).step_due is None


def test_what_the_customer_may_do():
    with pytest.raises(DomainError) as e:
        pd.clean_text("text", "   ", required=True)
    assert (e.value.field, e.value.status) == ("text", 422)
    with pytest.raises(DomainError):
        pd.clean_text("text", "x" * (pd.MAX_TEXT + 1), required=True)
    assert pd.clean_text("text", "", required=False) is None
    pd.can_confirm("resolved", T0, None)
    with pytest.raises(Conflict) as c:
        pd.can_confirm("resolved", T0, T0)
    assert c.value.field == "confirmed"
    with pytest.raises(Conflict):
        pd.can_confirm("in_progress", None, T0)
    with pytest.raises(Conflict):
        pd.can_reply("closed")
    with pytest.raises(pd.TooMany):
        pd.callback_allowed(T0, now=T0 + timedelta(minutes=59), every=timedelta(hours=1))
    pd.callback_allowed(T0, now=T0 + timedelta(hours=1), every=timedelta(hours=1))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=7200), min_size=1, max_size=40), st.integers(1, 10))
def test_write_budget_never_exceeds_the_limit_in_a_window(gaps: list[int], limit: int):
    span = timedelta(hours=1)
    window, now = pd.Window(None, 0), T0
    groups: dict[datetime, list[datetime]] = {}
    for gap in gaps:
        now += timedelta(seconds=gap)
        before = window
        try:
            window = pd.spend(window, now=now, limit=limit, span=span)
        except pd.TooMany as exc:
            assert exc.status == 429 and len(groups[before.start]) == limit and now - before.start < span
            continue
        groups.setdefault(window.start, []).append(now)
    for start, writes in groups.items():  # every window holds at most `limit` writes, all inside it
        assert len(writes) <= limit and all(start <= w < start + span for w in writes)


def test_shipped_rules_tell_the_customer_at_once_only_when_answering():
    from pathlib import Path

    import services.notification as pkg

    cfg = load_rules(Path(pkg.__file__).parent / "rules.toml")
    facts = {"has_phone": True, "has_email": False, "urgency": "normal", "priority": "P3"}
    quiet = {}
    for etype, data in (("ticket.created", {}), ("ticket.responded", {"first": True}),
                        ("ticket.responded", {"first": False}), ("ticket.progressed", {"visible_to_customer": True}),
                        ("ticket.resolved", {}), ("survey.sent", {}), ("survey.reminder", {})):
        [p] = [p for p in ndomain.plan(etype, {"ticket_no": NO, **data}, facts, cfg) if p.recipient == "customer"]
        quiet[(etype, data.get("first"))] = p.quiet
    assert quiet == {("ticket.created", None): False, ("ticket.responded", True): False,
                     ("ticket.responded", False): False, ("ticket.progressed", None): True,
                     ("ticket.resolved", None): True, ("survey.sent", None): True,
                     ("survey.reminder", None): True}


def test_production_refuses_the_dev_progress_secret():
    from pydantic import ValidationError

    from services.intake.progress import ProgressSettings

    with pytest.raises(ValidationError, match="INTAKE_PROGRESS_SECRET"):
        ProgressSettings(HELPDESK_ENV="production")
    with pytest.raises(ValidationError, match="INTAKE_PROGRESS_SECRET"):
        ProgressSettings(HELPDESK_ENV="production", secret="short")
    assert ProgressSettings(HELPDESK_ENV="production", secret="x" * 32).secret == "x" * 32
    assert ProgressSettings().env == "development"  # local runs keep the dev default
