"""Clock rules and ticket reactions, pure (no broker, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.sla import domain, policy
from services.sla.lifecycle import Reactor, Ticket
from shared.errors import DomainError

SH = ZoneInfo("Asia/Shanghai")
POLICIES = policy.load(None, tz=SH)
ALWAYS = POLICIES.calendar("24x7")
BUSINESS = POLICIES.calendar("business")
W = POLICIES.warning_at
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=SH)  # a Monday
NO = "20261123000001"


def m(minutes: float) -> timedelta:
    return timedelta(minutes=minutes)


def p1_clock(at: datetime = T0) -> domain.Clock:
    c, said = domain.start(NO, "first_response", "P1", POLICIES.target("first_response", priority="P1"), at,
                           ALWAYS, W)
    assert [e.type for _, e in said] == ["sla.started"]
    return c


def test_start_schedules_warning_then_deadline():
    c = p1_clock()
    assert c.due_at == T0 + m(15) and c.warn_at == T0 + m(12) and c.fire_at == T0 + m(12)


def test_fire_warns_at_80_percent_then_breaches_once():
    c = p1_clock()
    assert domain.fire(c, ALWAYS, T0 + m(11), W) == (c, [])
    c, said = domain.fire(c, ALWAYS, T0 + m(12), W)
    [(_, warning)] = said
    assert warning.type == "sla.warning" and warning.remaining_s == 180 and c.fire_at == T0 + m(15)
    c, said = domain.fire(c, ALWAYS, T0 + m(15, ), W)
    [(_, breach)] = said
    assert breach.type == "sla.breached" and breach.due_at == T0 + m(15) and c.fire_at is None
    assert domain.fire(c, ALWAYS, T0 + m(20), W)[1] == []


def test_overdue_clock_breaches_without_a_stale_warning():
    c, said = domain.fire(p1_clock(), ALWAYS, T0 + m(30), W)
    assert [e.type for _, e in said] == ["sla.breached"] and c.warned and c.breached


def test_stop_in_time_is_met_with_business_seconds():
    c, said, spent = domain.stop(p1_clock(), ALWAYS, T0 + m(10), T0 + m(10))
    [(_, met)] = said
    assert met.type == "sla.met" and met.business_seconds == 600 and spent == 600 and c.outcome == "met"
    assert c.fire_at is None


def test_stop_late_before_timer_fired_breaches_once():
    c, said, _ = domain.stop(p1_clock(), ALWAYS, T0 + m(16), T0 + m(16))
    assert [e.type for _, e in said] == ["sla.breached"] and c.outcome == "breached"
    c2, said2, _ = domain.stop(p1_clock(), ALWAYS, T0 + m(16), T0 + m(16))
    fired, _ = domain.fire(p1_clock(), ALWAYS, T0 + m(15), W)
    assert domain.stop(fired, ALWAYS, T0 + m(16), T0 + m(16))[1] == []  # breach already announced


def test_pause_moves_the_deadline_and_resume_reannounces():
    c = domain.pause(p1_clock(), T0 + m(5))
    assert c.fire_at is None and not c.running
    c, said = domain.resume(c, T0 + m(65), ALWAYS, W)
    assert c.due_at == T0 + m(75) and [e.type for _, e in said] == ["sla.started"]
    assert domain.elapsed(c, ALWAYS, T0 + m(70)) == 600


def test_retarget_keeps_history_across_calendars():
    # Saturday 10:00 P3 on the business calendar counts nothing; routed P1 (24x7) at 10:05 counts from 10:00
    sat = datetime(2026, 11, 28, 10, 0, tzinfo=SH)
    c, _ = domain.start(NO, "first_response", "P3", POLICIES.target("first_response", priority="P3"), sat,
                        BUSINESS, W)
    assert c.due_at == datetime(2026, 11, 30, 11, 0, tzinfo=SH)
    c, said = domain.retarget(c, POLICIES.target("first_response", priority="P1"), "P1", sat + m(5), ALWAYS, W)
    assert c.due_at == sat + m(15) and c.priority == "P1" and [e.type for _, e in said] == ["sla.started"]


def test_retarget_to_a_passed_deadline_fires_at_once():
    c, _ = domain.start(NO, "first_response", "P3", POLICIES.target("first_response", priority="P3"), T0,
                        BUSINESS, W)
    c, _ = domain.retarget(c, POLICIES.target("first_response", priority="P1"), "P1", T0 + m(40), ALWAYS, W)
    assert c.due_at == T0 + m(15) and c.fire_at <= T0 + m(40)  # due now: fires at once
    _, said = domain.fire(c, ALWAYS, T0 + m(40), W)
    assert [e.type for _, e in said] == ["sla.breached"]


def test_restart_keeps_elapsed():
    target = POLICIES.target("resolution", priority="P1")  # 4 h 24x7
    c, _ = domain.start(NO, "resolution", "P1", target, T0, ALWAYS, W)
    c, _, _ = domain.stop(c, ALWAYS, T0 + timedelta(hours=1), T0 + timedelta(hours=1))
    c, said = domain.restart(c, T0 + timedelta(hours=5), ALWAYS, W)
    assert c.running and c.due_at == T0 + timedelta(hours=8) and [e.type for _, e in said] == ["sla.started"]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(1, 600), st.floats(1, 600)), max_size=6))
def test_pauses_shift_a_24x7_deadline_by_exactly_the_paused_time(gaps):
    c, t, paused = p1_clock(), T0, 0.0
    for run_s, pause_s in gaps:
        t += timedelta(seconds=run_s)
        c = domain.pause(c, t)
        t += timedelta(seconds=pause_s)
        paused += pause_s
        c, _ = domain.resume(c, t, ALWAYS, W)
    assert c.due_at == pytest.approx(T0 + m(15) + timedelta(seconds=paused), abs=timedelta(milliseconds=1)) \
        or c.breached or c.due_at <= t


# ---- ticket reactions ----------------------------------------------------------------------------

REACTOR = Reactor(POLICIES)


def created(received: datetime = T0, tier: str = "standard") -> dict:
    return {"ticket_no": NO, "seq": 1, "channel": "phone", "customer": {"name": "李雷", "tier": tier},
            "urgency": "urgent", "impact": "single", "received_at": received.isoformat(),
            "created_at": received.isoformat()}


def react(ticket, clocks, type_, data, now):
    return REACTOR.react(ticket, clocks, type_, {"ticket_no": NO, "seq": 9, **data}, time=now, now=now)


def test_created_starts_both_clocks_as_unrouted_p3():
    out = react(None, {}, "ticket.created", created(), T0)
    assert set(out.clocks) == {"first_response", "resolution"}
    assert all(c.priority == "P3" for c in out.clocks.values())
    assert [e.type for _, e in out.announcements] == ["sla.started", "sla.started"]


def test_routed_first_is_remembered():
    out = react(None, {}, "ticket.routed", {"category": "fault", "priority": "P1", "department": "tech",
                                            "assignee": None, "rule": "r"}, T0)
    assert out.ticket.priority == "P1" and out.clocks == {}
    out = react(out.ticket, {}, "ticket.created", created(), T0)
    assert out.clocks["first_response"].due_at == T0 + m(15)


def test_deadline_passed_at_start_breaches_at_once():
    old = T0 - timedelta(days=10)
    out = react(None, {}, "ticket.created", created(received=old), T0)
    kinds = [(c.metric, e.type) for c, e in out.announcements]
    assert ("first_response", "sla.breached") in kinds and ("resolution", "sla.breached") in kinds


def test_unrouted_ticket_waits_for_routing_before_breaching_under_its_real_priority():
    graced = Reactor(POLICIES, routing_grace=timedelta(seconds=30))
    old = T0 - timedelta(days=10)
    out = graced.react(None, {}, "ticket.created", {"ticket_no": NO, "seq": 1, **created(received=old)},
                       time=T0, now=T0)
    assert [e.type for _, e in out.announcements] == ["sla.started", "sla.started"]
    assert all(c.fire_at == T0 + timedelta(seconds=30) for c in out.clocks.values())
    routed = {"ticket_no": NO, "seq": 1, "category": "fault", "priority": "P1", "department": "tech",
              "assignee": None, "rule": "r"}
    out = graced.react(out.ticket, out.clocks, "ticket.routed", routed, time=T0 + timedelta(seconds=1),
                       now=T0 + timedelta(seconds=1))
    breaches = [(c.metric, c.priority) for c, e in out.announcements if e.type == "sla.breached"]
    # (the shipped policy's fault steps start too: their first step, 10 days old, breaches as well)
    assert sorted(breaches) == [("first_response", "P1"), ("resolution", "P1"), ("step:respond", "P1")]


def test_responded_before_received_is_refused():
    out = react(None, {}, "ticket.created", created(), T0)
    with pytest.raises(DomainError, match="before the ticket was received"):
        react(out.ticket, out.clocks, "ticket.responded",
              {"actor": "a", "at": (T0 - timedelta(hours=1)).isoformat(), "first": True}, T0)


def test_unknown_ticket_and_type_refused():
    with pytest.raises(DomainError, match="unknown ticket"):
        react(None, {}, "ticket.responded", {"actor": "a", "at": T0.isoformat(), "first": True}, T0)
    with pytest.raises(DomainError, match="unknown event type"):
        REACTOR.handles("ticket.exploded")
    assert not REACTOR.handles("ticket.escalated")


def test_first_response_observed_in_wall_seconds():
    out = react(None, {}, "ticket.created", created(), T0)
    out = react(out.ticket, out.clocks, "ticket.responded",
                {"actor": "a", "at": (T0 + m(30)).isoformat(), "first": True}, T0 + m(30))
    [(metric, value, labels)] = out.observations
    assert (metric, value, labels) == ("first_response", 1800, {"priority": "P3", "channel": "phone"})
    # the first reply also starts the regular-update clock (issue #15)
    assert [(e.type, c.metric) for c, e in out.announcements] == [("sla.met", "first_response"),
                                                                 ("sla.started", "next_update")]


def test_negative_survey_callback_stopped_by_progress():
    t = Ticket(NO, received_at=T0, channel="phone", priority="P2")
    out = react(t, {}, "survey.negative", {"survey_id": "s1", "reason": "dissatisfied"}, T0)
    cb = out.clocks["callback"]
    assert cb.due_at == T0 + m(60) and cb.policy == "callback"
    out = react(t, out.clocks, "ticket.progressed",
                {"actor": "mgr", "at": (T0 + m(20)).isoformat(), "note": "called", "visible_to_customer": False},
                T0 + m(20))
    assert out.clocks["callback"].outcome == "met"


def test_closed_cancels_running_clocks_silently():
    out = react(None, {}, "ticket.created", created(), T0)
    out = react(out.ticket, out.clocks, "ticket.closed", {"actor": "a", "at": (T0 + m(1)).isoformat()}, T0 + m(1))
    assert {c.outcome for c in out.clocks.values()} == {"cancelled"} and out.announcements == []


# ---- policy file --------------------------------------------------------------------------------

def test_overrides_most_specific_wins():
    doc = {"calendars": {"24x7": {"hours": "always"}},
           "priorities": {p: {"calendar": "24x7", "first_response": "1h", "resolution": "8h"}
                          for p in ("P1", "P2", "P3", "P4")},
           "overrides": [{"name": "logistics", "match": {"category": "logistics"}, "resolution": "2h"},
                         {"name": "vip-logistics", "match": {"category": "logistics", "tier": "vip"},
                          "resolution": "1h"}]}
    p = policy.parse(doc, tz=SH)
    assert p.target("resolution", priority="P3", category="logistics").seconds == 7200
    assert p.target("resolution", priority="P3", category="logistics", tier="vip").policy == "vip-logistics:P3"
    assert p.target("first_response", priority="P3", category="logistics", tier="vip").seconds == 3600
    assert p.target("resolution", priority="P3").seconds == 8 * 3600


@pytest.mark.parametrize(("change", "message"), [
    ({"priorities": {"P1": {"calendar": "24x7", "first_response": "soon", "resolution": "4h"}}}, "duration"),
    ({"calendars": {"b": {"hours": {"mon": "18:00-09:00"}}}}, "within one day"),
    ({"calendars": {"b": {"hours": {"funday": "09:00-18:00"}}}}, "unknown weekday"),
    ({"calendars": {"b": {"hours": "always", "colour": "red"}}}, "Extra inputs"),
    ({"callback": {"calendar": "nowhere", "target": "1h"}}, "unknown calendar"),
    ({"calendars": {"b": {"hours": {"mon": "09:00-18:00"}, "holidays": "ZZ"}}}, "unknown country"),
])
def test_bad_policy_refused_with_the_place(change, message):
    doc = {"calendars": {"24x7": {"hours": "always"}},
           "priorities": {p: {"calendar": "24x7", "first_response": "1h", "resolution": "8h"}
                          for p in ("P1", "P2", "P3", "P4")}}
    for key, value in change.items():
        doc[key] = {**doc.get(key, {}), **value} if isinstance(value, dict) and key != "callback" else value
    with pytest.raises(policy.PolicyError, match=message):
        policy.parse(doc, tz=SH)


def test_bad_policy_file_refuses_the_app(tmp_path, monkeypatch):
    bad = tmp_path / "policy.toml"
    bad.write_text("[priorities.P1\n", encoding="utf-8")
    monkeypatch.setenv("SLA_POLICY_FILE", str(bad))
    from services.sla.app import create_app

    with pytest.raises(policy.PolicyError, match="not valid TOML"):
        create_app()


def test_utc_and_local_timestamps_agree():
    a = p1_clock(T0)
    b = p1_clock(T0.astimezone(UTC))
    assert a.due_at == b.due_at


# ---- intake's per-ticket order ------------------------------------------------------------------

def test_intake_events_apply_in_seq_order():
    from services.sla.usecases import OutOfOrder, _gate
    from shared.envelope import new_event

    def ev(seq: int, source: str = "intake"):
        return new_event(service=source, type="ticket.responded", ticket_no=NO, seq=seq, data={})

    t = Ticket(NO, received_at=T0, intake_seq=3)
    assert _gate(t, ev(4), last_try=False) is True
    assert _gate(t, ev(3), last_try=False) is False  # already applied
    with pytest.raises(OutOfOrder):
        _gate(t, ev(6), last_try=False)
    with pytest.raises(DomainError, match="seq 4 never arrived"):
        _gate(t, ev(6), last_try=True)
    with pytest.raises(DomainError, match="unknown ticket"):
        _gate(None, ev(2), last_try=True)
    assert _gate(t, ev(9, source="routing"), last_try=False) is True
