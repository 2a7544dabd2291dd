"""The customer-side clocks, pure (no broker, no database): ``eta`` and ``next_update`` through the SLA
reactor with the shipped policy (P2: next_update 8 business hours; P1: 2 h on 24×7)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from services.sla import domain, policy, promises
from services.sla.lifecycle import Reactor

SH = ZoneInfo("Asia/Shanghai")
POLICIES = policy.load(None, tz=SH)
REACTOR = Reactor(POLICIES)
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=SH)  # a Monday, business hours
NO = "20261123000001"


def react(out, type_: str, at: datetime, **data):  # noqa: ANN001, ANN201
    ticket, clocks = (out.ticket, out.clocks) if out else (None, {})
    return REACTOR.react(ticket, clocks, type_, {"ticket_no": NO, "seq": 9, "actor": "eng-1", "at": at.isoformat(),
                                                 **data}, time=at, now=at)


def opened(priority: str = "P1"):  # noqa: ANN201
    out = react(None, "ticket.created", T0, channel="web", customer={"name": "李雷"}, urgency="normal",
                impact="single", received_at=T0.isoformat(), created_at=T0.isoformat())
    return react(out, "ticket.routed", T0, category="fault", priority=priority, department="tech", assignee="eng-1",
                 rule="r")


def said(out) -> list[tuple[str, str]]:  # noqa: ANN001
    return [(e.type, c.metric) for c, e in out.announcements]


def test_first_reply_starts_next_update_and_every_visible_update_restarts_it():
    out = react(opened("P1"), "ticket.responded", T0 + timedelta(minutes=5), first=True)
    assert ("sla.started", "next_update") in said(out)
    assert out.clocks["next_update"].due_at == T0 + timedelta(minutes=5, hours=2)
    out = react(out, "ticket.progressed", T0 + timedelta(minutes=30), note="n", visible_to_customer=False)
    assert "next_update" not in out.changed  # an internal note is no update for the customer
    out = react(out, "ticket.progressed", T0 + timedelta(hours=1), note="n", visible_to_customer=True)
    assert said(out) == [("sla.met", "next_update"), ("sla.started", "next_update")]
    assert out.clocks["next_update"].due_at == T0 + timedelta(hours=3)


def test_next_update_on_the_business_calendar_pauses_while_waiting():
    out = react(opened("P2"), "ticket.responded", T0, first=True)
    assert out.clocks["next_update"].due_at == T0 + timedelta(hours=8)  # 10:00 + 8 business hours, same day 18:00
    out = react(out, "ticket.waiting", T0 + timedelta(hours=1))
    assert out.clocks["next_update"].fire_at is None and not out.clocks["next_update"].running
    out = react(out, "ticket.resumed", T0 + timedelta(days=1), waited_s=86400.0)  # Tuesday 10:00
    assert out.clocks["next_update"].due_at == T0 + timedelta(days=1, hours=7)


def test_missed_eta_breaches_at_the_promise_and_a_new_eta_replaces_it():
    out = opened("P3")
    eta = T0 + timedelta(hours=24)
    out = react(out, "ticket.progressed", T0, note="预计24小时内完成维修", visible_to_customer=True,
                eta=eta.isoformat())
    c = out.clocks["eta"]
    assert (c.calendar, c.due_at, c.warn_at) == (promises.WALL, eta, T0 + timedelta(hours=24 * 0.8))
    fired, announced = domain.fire(c, REACTOR.cal(c), eta + timedelta(seconds=1), POLICIES.warning_at)
    assert [e.type for _, e in announced] == ["sla.breached"] and fired.breached
    later = T0 + timedelta(hours=48)
    out = react(out, "ticket.progressed", T0 + timedelta(hours=2), note="改期", visible_to_customer=True,
                eta=later.isoformat())
    assert out.clocks["eta"].due_at == later and ("sla.started", "eta") in said(out)
    out = react(out, "ticket.resolved", T0 + timedelta(hours=30), outcome="resolved", solution="更换主板",
                first_contact=False)
    assert ("sla.met", "eta") in said(out) and out.clocks["eta"].outcome == "met"


def test_closing_cancels_the_customer_clocks_silently():
    out = react(opened("P1"), "ticket.responded", T0, first=True)
    out = react(out, "ticket.progressed", T0, note="n", visible_to_customer=True,
                eta=(T0 + timedelta(hours=1)).isoformat())
    out = react(out, "ticket.closed", T0 + timedelta(minutes=10))
    assert {out.clocks[m].outcome for m in promises.CUSTOMER_CLOCKS} == {"cancelled"}
    assert not [a for a in said(out) if a[1] in promises.CUSTOMER_CLOCKS]


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=30 * 86400), st.integers(min_value=0, max_value=3600))
def test_eta_deadline_is_the_promise_and_warning_before_it(ahead_s: int, offset_s: int):
    at = T0 + timedelta(seconds=offset_s)
    eta = at + timedelta(seconds=ahead_s)
    out = react(opened("P2"), "ticket.progressed", at, note="n", visible_to_customer=True, eta=eta.isoformat())
    c = out.clocks["eta"]
    assert c.due_at == eta and at < c.warn_at <= eta and c.fire_at == c.warn_at
