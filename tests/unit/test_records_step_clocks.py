"""Revisit and step clocks, and the customer's deadline, pure (the sla Reactor over the shipped policy)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.sla import domain, policy
from services.sla.lifecycle import Reactor, Ticket

SH = ZoneInfo("Asia/Shanghai")
P = policy.load(None, tz=SH)
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=SH)  # a Monday
NO = "20261123000009"
H = timedelta(hours=1)


class Flow:
    """Feeds events to a Reactor like the sla service does (state carried between events)."""

    def __init__(self, policies: policy.Policies = P) -> None:
        self.r = Reactor(policies)
        self.ticket: Ticket | None = None
        self.clocks: dict[str, domain.Clock] = {}
        self.said: list = []

    def __call__(self, event_type: str, when: datetime, now: datetime | None = None, **data):
        out = self.r.react(self.ticket, self.clocks, event_type, {"ticket_no": NO, "seq": 1, **data},
                           time=when, now=now or when)
        self.ticket, self.clocks = out.ticket, out.clocks
        self.said += [e for _, e in out.announcements]
        return [e for _, e in out.announcements]

    def create(self, category: str = "fault", expected_by: datetime | None = None, priority: str = "P3"):
        self("ticket.created", T0, channel="phone", customer={"name": "A公司"}, urgency="normal", impact="single",
             received_at=T0.isoformat(), created_at=T0.isoformat(),
             expected_by=expected_by.isoformat() if expected_by else None)
        return self("ticket.routed", T0, category=category, priority=priority, department="technical",
                    assignee="eng-1", rule="test")

    def fire(self, now: datetime):
        said = []
        for metric, c in list(self.clocks.items()):
            if c.fire_at is not None and c.fire_at <= now:
                new, out = domain.fire(c, self.r.cal(c), now, P.warning_at)
                self.clocks[metric] = new
                said += [e for _, e in out]
        return said

    def running_steps(self) -> list[str]:
        return [m for m, c in self.clocks.items() if m.startswith("step:") and not c.stopped]


def step_events(events, type_: str):
    return [e for e in events if e.type == type_ and e.metric == "step"]


def test_first_step_starts_at_received_and_names_step_and_limit():
    f = Flow()
    said = f.create()
    [started] = step_events(said, "sla.started")
    assert (started.step, started.limit, started.due_at) == ("respond", "2h", T0 + 2 * H)
    assert f.running_steps() == ["step:respond"]


def test_reaching_a_step_meets_the_running_one_and_starts_its_own_clock():
    f = Flow()
    f.create()
    said = f("ticket.progressed", T0 + H, actor="a", at=(T0 + H).isoformat(), note="远程检测中",
             visible_to_customer=False, step="remote_test")
    [met] = step_events(said, "sla.met")
    [started] = step_events(said, "sla.started")
    assert met.step == "respond" and started.step == "remote_test" and started.due_at == T0 + 25 * H
    assert f.running_steps() == ["step:remote_test"]


def test_step_warns_at_80_percent_then_breaches_with_its_limit():
    f = Flow()
    f.create()
    f("ticket.progressed", T0, actor="a", at=T0.isoformat(), note="检测", visible_to_customer=False,
      step="remote_test")
    [warning] = step_events(f.fire(T0 + timedelta(hours=19.2)), "sla.warning")
    assert warning.step == "remote_test" and warning.limit == "24h"
    [breach] = step_events(f.fire(T0 + 24 * H), "sla.breached")
    assert breach.step == "remote_test" and breach.limit == "24h" and breach.due_at == T0 + 24 * H


def test_waiting_pauses_the_step_and_resolving_meets_it():
    f = Flow()
    f.create()
    f("ticket.waiting", T0 + H, actor="a", at=(T0 + H).isoformat())
    said = f("ticket.resumed", T0 + 3 * H, actor="a", at=(T0 + 3 * H).isoformat(), waited_s=7200.0)
    [moved] = step_events(said, "sla.started")
    assert moved.due_at == T0 + 4 * H
    said = f("ticket.resolved", T0 + 3.5 * H, outcome="resolved", solution="更换电源适配器", actor="a",
             at=(T0 + 3.5 * H).isoformat(), first_contact=True, category="fault", priority="P3")
    assert [e.step for e in step_events(said, "sla.met")] == ["respond"]
    assert f.running_steps() == []
    assert "revisit" not in f.clocks  # a fault is no complaint: the default policy asks no revisit


def test_unknown_or_repeated_step_changes_nothing():
    f = Flow()
    f.create()
    assert f("ticket.progressed", T0 + H, actor="a", at=(T0 + H).isoformat(), note="x", visible_to_customer=False,
             step="no_such_step") == []
    assert f.running_steps() == ["step:respond"]


def test_a_category_without_steps_has_no_step_clocks():
    f = Flow()
    f.create(category="consultation")
    assert not [m for m in f.clocks if m.startswith("step:")]


def test_complaint_resolved_starts_revisit_of_two_working_days_met_by_the_call():
    f = Flow()
    f.create(category="complaint", priority="P2")
    at = T0 + H
    said = f("ticket.resolved", at, outcome="resolved", solution="上门取件换货，赠50元优惠券", actor="a",
             at=at.isoformat(), first_contact=False, complaint=True, category="complaint", priority="P2")
    [started] = [e for e in said if e.type == "sla.started" and e.metric == "revisit"]
    # Monday 11:00 + 18 business hours (2 × 9 h, Mon–Fri 09–18) = Wednesday 11:00
    assert started.due_at == datetime(2026, 11, 25, 11, 0, tzinfo=SH)
    said = f("ticket.revisited", at + H, actor="a", at=(at + H).isoformat(), outcome="客户满意", satisfied=True)
    assert [(e.type, e.metric) for e in said] == [("sla.met", "revisit")]


def test_revisit_breach_and_reopen_cancels():
    f = Flow()
    f.create(category="attitude", priority="P2")
    f("ticket.resolved", T0, outcome="resolved", solution="主管致歉", actor="a", at=T0.isoformat(),
      first_contact=False, complaint=True, category="attitude")
    [breach] = [e for e in f.fire(datetime(2026, 11, 25, 10, 0, tzinfo=SH)) if e.type == "sla.breached"]
    assert breach.metric == "revisit"
    g = Flow()
    g.create(category="complaint", priority="P2")
    g("ticket.resolved", T0, outcome="resolved", solution="退款300元", actor="a", at=T0.isoformat(),
      first_contact=False, complaint=True, category="complaint")
    g("ticket.reopened", T0 + H, actor="c", at=(T0 + H).isoformat(), reason="仍不满意")
    assert g.clocks["revisit"].outcome == "cancelled"


def test_policy_can_ask_revisit_for_other_categories():
    doc = {**P.spec.model_dump(mode="python", exclude={"revisit", "steps"}),
           "revisit": {"target": "3wd", "complaints": True, "categories": ["fault"]}}
    f = Flow(policy.parse(doc, tz=SH))
    f.create(category="fault")
    said = f("ticket.resolved", T0, outcome="resolved", solution="更换电源模块", actor="a", at=T0.isoformat(),
             first_contact=True, category="fault")
    assert [e.metric for e in said if e.type == "sla.started"] == ["revisit"]


def test_bad_steps_policy_refuses_naming_the_key():
    doc = P.spec.model_dump(mode="python")
    with pytest.raises(policy.PolicyError, match=r"steps\.fault\.sequence\.0\.limit"):
        policy.parse({**doc, "steps": {"fault": {"sequence": [{"step": "a", "limit": "soon"}]}}}, tz=SH)
    with pytest.raises(policy.PolicyError, match="steps.faults"):
        policy.parse({**doc, "steps": {"faults": {"sequence": [{"step": "a", "limit": "1h"}]}}}, tz=SH)


def test_expected_by_earlier_than_policy_tightens_resolution():
    f = Flow()
    f.create(expected_by=T0 + 5 * H)  # P3: 48 business hours, far later
    [res] = [e for e in f.said if e.type == "sla.started" and e.metric == "resolution"]
    assert (res.policy, res.target, res.due_at) == ("expected_by", "expected_by", T0 + 5 * H)
    g = Flow()
    g.create(expected_by=T0 + timedelta(days=60))  # later than the policy: the policy applies
    [res] = [e for e in g.said if e.type == "sla.started" and e.metric == "resolution"]
    assert res.target == "policy" and res.policy == "default:P3"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["respond", "remote_test", "repair", "bogus"]),
                          st.integers(min_value=1, max_value=600)), max_size=8))
def test_at_most_one_step_runs_and_each_is_due_its_limit_after_it_began(moves):
    f = Flow()
    f.create()
    at = T0
    for name, minutes in moves:
        at += timedelta(minutes=minutes)
        f("ticket.progressed", at, actor="a", at=at.isoformat(), note="n", visible_to_customer=False, step=name)
        assert len(f.running_steps()) <= 1
    limits = dict(P.steps("fault"))
    for metric, c in f.clocks.items():
        if metric.startswith("step:"):
            assert c.target_s == limits[metric.removeprefix("step:")].seconds
            if not c.segments or c.outcome:
                assert c.due_at == c.started_at + timedelta(seconds=c.target_s)
    starts = [e for e in f.said if e.type == "sla.started" and e.metric == "step"]
    assert len({e.step for e in starts}) == len(starts)  # each step starts once


def test_first_response_meets_the_respond_step_and_starts_the_next():
    f = Flow()
    f.create()
    said = f("ticket.responded", T0 + H, actor="a", at=(T0 + H).isoformat(), first=True)
    assert [e.step for e in step_events(said, "sla.met")] == ["respond"]
    [nxt] = step_events(said, "sla.started")
    assert (nxt.step, nxt.due_at) == ("remote_test", T0 + 25 * H)
    assert step_events(f("ticket.responded", T0 + 2 * H, actor="a", at=(T0 + 2 * H).isoformat(), first=False),
                       "sla.met") == []


def test_a_later_reclassification_starts_the_new_sequence_when_it_happens():
    f = Flow()
    f.create(category="complaint", priority="P2")
    later = T0 + 5 * H
    said = f("ticket.routed", later, category="refund", priority="P2", department="finance", assignee=None,
             rule="r", reason="transferred")
    [started] = step_events(said, "sla.started")
    assert started.step == "review" and f.clocks["step:review"].started_at == later
