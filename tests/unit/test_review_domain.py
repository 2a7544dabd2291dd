"""Review's pure logic: the fold is order- and duplicate-independent, the figure arithmetic is exact,
periods have the right bounds (hypothesis where arithmetic)."""

from __future__ import annotations

import statistics
from datetime import date, datetime, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.review import domain, figures, periods
from shared.errors import DomainError
from tests.review.synthetic import local, month_of_tickets

TZ = ZoneInfo("Asia/Shanghai")
EVENTS = [e for t in month_of_tickets(2026, 11, key_prefix="u") for e in t.events]


def fold_all(events) -> dict[str, dict]:
    states: dict[str, dict] = {}
    for e in events:
        no = e.data["ticket_no"]
        states[no] = domain.fold(states.get(no, {}), type=e.type, source=e.source, seq=e.data["seq"],
                                 event_id=e.id, data=e.data)
    return {no: domain.derive(s) for no, s in states.items()}


IN_ORDER = fold_all(EVENTS)


@settings(max_examples=60, deadline=None)
@given(st.permutations(EVENTS), st.lists(st.sampled_from(EVENTS), max_size=10))
def test_any_arrival_order_and_duplicates_fold_to_the_same_fact(order, copies):
    assert fold_all(list(order) + copies) == IN_ORDER


def test_a_partial_fact_is_completed_by_later_events():
    t = month_of_tickets(2026, 11, key_prefix="p")[0]
    later = [e for e in t.events if e.type != "ticket.created"]
    partial = fold_all(later)[t.no]
    assert partial["received_at"] is None and partial["fr_us"] is None and partial["category"] == "fault"
    assert fold_all(later + t.events[:1])[t.no] == fold_all(t.events)[t.no]


def test_unknown_fields_are_ignored_and_missing_ones_are_null():
    s = domain.fold({}, type="ticket.diagnosed", source="/helpdesk/intake", seq=4, event_id="x",
                    data={"cause": "hardware", "sub_item": "power", "future_field": [1, 2]})
    cols = domain.derive(s)
    assert (cols["cause"], cols["sub_item"], cols["responsibility"]) == ("hardware", "power", None)
    assert domain.derive(domain.fold({}, type="ticket.future", source="/x", seq=1, event_id="y", data={})) == \
        domain.derive({})


def test_a_ticket_event_with_unreadable_fields_raises_naming_the_field():
    with pytest.raises(DomainError) as err:
        domain.fold({}, type="ticket.resolved", source="/helpdesk/intake", seq=2, event_id="z", data={"at": "soon"})
    assert err.value.field == "data.at"


@given(st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=50))
def test_mean_is_exact_and_rounded_to_a_millisecond(values):
    got = figures.out(figures.mean_s(sum(values), len(values)))
    assert got == float(round(Fraction(sum(values), len(values) * 10**6), 3))
    assert abs(got - statistics.fmean(values) / 1e6) <= 0.0005 + 1e-9 * max(values) / 1e6


@given(st.integers(0, 10**6), st.integers(0, 10**6))
def test_change_is_relative_to_previous_and_null_without_one(value, previous):
    ch = figures.triplet(value, previous)["change"]
    if previous == 0:
        assert ch is None
    else:
        assert ch == float(round(Fraction(value - previous, previous), 4))
    assert figures.triplet(None, previous)["change"] is None and figures.triplet(value, None)["change"] is None


@given(st.integers(0, 1000), st.integers(0, 1000))
def test_share(part, whole):
    s = figures.share(min(part, whole), whole)
    assert (s is None) == (whole == 0)
    if s is not None:
        assert 0 <= figures.out(s) <= 1


def test_combine_keeps_keys_of_both_periods():
    got = figures.combine({"a": {"x": 2}}, {"a": {"x": 1, "y": 4}})
    assert got == {"a": {"x": {"value": 2, "previous": 1, "change": 1.0},
                         "y": {"value": None, "previous": 4, "change": None}}}


def test_micros_is_exact():
    a = datetime(2026, 11, 1, 10, tzinfo=TZ)
    assert domain.micros(a, a + timedelta(days=3, microseconds=7)) == 3 * 86400 * 10**6 + 7


@pytest.mark.parametrize(("text", "first", "last", "prev"), [
    ("2026-11", date(2026, 11, 1), date(2026, 11, 30), "2026-10"),
    ("2026-01", date(2026, 1, 1), date(2026, 1, 31), "2025-12"),
    ("2026-W01", date(2025, 12, 29), date(2026, 1, 4), "2025-W52"),
    ("2026-Q1", date(2026, 1, 1), date(2026, 3, 31), "2025-Q4"),
    ("2026-11-01..2026-11-10", date(2026, 11, 1), date(2026, 11, 10), "2026-10-22..2026-10-31"),
])
def test_periods(text, first, last, prev):
    p = periods.parse(text)
    assert (p.name, p.first, p.last, p.previous().name) == (text, first, last, prev)
    assert p.start(TZ) == datetime(first.year, first.month, first.day, tzinfo=TZ)


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31)))
def test_a_month_and_its_previous_tile_time(day):
    m = periods.month(day)
    assert m.first <= day <= m.last and m.previous().last + timedelta(days=1) == m.first
    assert m.following().first == m.last + timedelta(days=1)


@pytest.mark.parametrize("bad", ["2026-13", "2026-00", "2026-W53x", "2026-Q0", "2026/11", "", "2026-02-30..2026-03-01"])
def test_malformed_periods_name_themselves(bad):
    with pytest.raises(DomainError) as err:
        periods.parse(bad)
    assert err.value.field == "period"


def test_future_periods_are_refused():
    now = local(2026, 12, 2, 7)
    assert periods.parse_past("2026-12", now=now, tz=TZ).name == "2026-12"
    with pytest.raises(DomainError):
        periods.parse_past("2027-01", now=now, tz=TZ)


def test_the_snapshot_is_due_from_0200_on_the_first():
    assert periods.due_snapshot(local(2026, 12, 1, 1, 59), TZ).name == "2026-10"
    assert periods.due_snapshot(local(2026, 12, 1, 2, 0), TZ).name == "2026-11"
    assert [m.name for m in periods.trend_months(periods.parse("2026-W01"))][-2:] == ["2025-12", "2026-01"]


def test_business_durations_count_on_the_tickets_sla_calendar():
    from services.review.config import SHIPPED_POLICY, business_time, load_calendars

    business = business_time(load_calendars(SHIPPED_POLICY, TZ))
    t = month_of_tickets(2026, 11, key_prefix="b")[0]  # 24x7 calendar in its sla.started
    cols = fold_all(t.events)[t.no]
    assert domain.derive({}, business)["fr_bus_us"] is None
    s: dict = {}
    for e in t.events:
        s = domain.fold(s, type=e.type, source=e.source, seq=e.data["seq"], event_id=e.id, data=e.data)
    assert domain.derive(s, business)["fr_bus_us"] == cols["fr_us"]  # 24x7: business time is wall time
    # Friday 2026-11-13 17:00 -> Monday 10:00 on the business calendar (09:00-18:00): 1 h + 1 h
    s = domain.fold({}, type="ticket.created", source="/helpdesk/intake", seq=1, event_id="c",
                    data={"received_at": local(2026, 11, 13, 17).isoformat(), "channel": "web"})
    s = domain.fold(s, type="sla.started", source="/helpdesk/sla", seq=1, event_id="s",
                    data={"metric": "first_response", "policy": "default:P3", "calendar": "business"})
    s = domain.fold(s, type="ticket.responded", source="/helpdesk/intake", seq=2, event_id="r",
                    data={"at": local(2026, 11, 16, 10).isoformat()})
    assert domain.derive(s, business)["fr_bus_us"] == 2 * 3600 * 10**6
    assert domain.derive(s, business)["fr_us"] == (2 * 86400 + 17 * 3600) * 10**6


def test_events_about_no_ticket_are_ignored_and_ticket_events_without_one_refused():
    from services.review import usecases
    from shared.envelope import CloudEvent

    def ev(type_: str, data: dict) -> CloudEvent:
        return CloudEvent(id="i", source="/helpdesk/notification", type=type_, time=local(2026, 12, 1), data=data)

    assert usecases.understand(ev("notification.sent", {"ticket_no": "", "seq": 1, "channel": "wecom"})) is None
    assert usecases.understand(ev("review.published", {"period": "2026-11"})) is None
    for bad in ({"ticket_no": ""}, {"seq": 1}, {"ticket_no": 7, "seq": 1}):
        with pytest.raises(DomainError):
            usecases.understand(ev("ticket.resolved", bad))


def test_revisit_step_and_customer_clocks_count_in_no_compliance_figure():
    """records' revisit / step clocks and customer's eta / next_update clocks are kept under their own
    keys (a step by its name) and change neither compliance, nor the calendar, in any arrival order;
    next_update changes only its cycle counters (one met, one breached here)."""
    t = month_of_tickets(2026, 11, key_prefix="c")[0]
    base = fold_all(t.events)[t.no]
    at = local(2026, 11, 20).isoformat()
    others = []
    for i, (metric, extra) in enumerate([("revisit", {}), ("step", {"step": "diagnose"}), ("step", {"step": "repair"}),
                                         ("eta", {}), ("next_update", {})]):
        common = {"ticket_no": t.no, "metric": metric, "due_at": at, **extra}
        others += [
            _ev("sla.started", 900 + 3 * i, {**common, "policy": "other", "calendar": "nonexistent"}),
            _ev("sla.breached", 901 + 3 * i, {**common, "breached_at": at}),
            _ev("sla.met", 902 + 3 * i, {**common, "met_at": at, "business_seconds": 1.0}),
        ]
    want = {**base, "nu_met": base["nu_met"] + 1, "nu_breached": base["nu_breached"] + 1}
    with_others = fold_all(t.events + others)[t.no]
    assert with_others == want
    assert {k for k in want if want[k] != base[k]} == {"nu_met", "nu_breached"}
    assert (with_others["fr_sla"], with_others["res_sla"], with_others["sla_calendar"]) == \
        (base["fr_sla"], base["res_sla"], base["sla_calendar"])
    assert fold_all(list(reversed(others)) + t.events)[t.no] == want
    state: dict = {}
    for e in others:
        state = domain.fold(state, type=e.type, source=e.source, seq=e.data["seq"], event_id=e.id, data=e.data)
    assert set(state["sla"]) == {"revisit", "step:diagnose", "step:repair", "eta", "next_update"}


def _ev(type_: str, seq: int, data: dict):
    from shared.envelope import CloudEvent

    return CloudEvent(id=f"{type_}-{seq}", source="/helpdesk/sla", type=type_, time=local(2026, 11, 20),
                      data={**data, "seq": seq})


def _cycle_events(no: str, outcomes: list[bool]):
    """A next_update clock restarted len(outcomes) times: each cycle a sla.started and then its ending
    (True: sla.met, False: sla.breached), seqs ascending, each cycle with its own due_at."""
    events = []
    for i, met in enumerate(outcomes):
        due = local(2026, 11, 20, 9, i).isoformat()
        common = {"ticket_no": no, "metric": "next_update", "due_at": due}
        events.append(_ev("sla.started", 2 * i + 1, {**common, "policy": "default:P2", "calendar": "24x7"}))
        events.append(_ev("sla.met", 2 * i + 2, {**common, "met_at": due, "business_seconds": 60.0}) if met
                      else _ev("sla.breached", 2 * i + 2, {**common, "breached_at": due}))
    return events


@settings(max_examples=80, deadline=None)
@given(st.lists(st.booleans(), max_size=12).flatmap(lambda outcomes: st.tuples(
    st.just(outcomes), st.permutations(_cycle_events("NU-1", outcomes)),
    st.lists(st.integers(0, 2 * len(outcomes) - 1), max_size=10) if outcomes else st.just([]),
    st.booleans())))
def test_next_update_cycles_are_counted_once_in_any_order(case):
    """Each distinct sla.met / sla.breached of the next_update clock counts once: duplicates (the same
    event again, or under a new id with the same seq — a publisher's retry) and any order give the same
    counters, and the first-response / resolution columns stay untouched."""
    outcomes, order, copies, retry = case
    events = list(order)
    for i in copies:
        e = order[i]
        events.insert((i * 7) % (len(events) + 1), e.model_copy(update={"id": f"retry-{e.id}"}) if retry else e)
    cols = fold_all(events).get("NU-1") or domain.derive({})
    assert (cols["nu_met"], cols["nu_breached"]) == (sum(outcomes), len(outcomes) - sum(outcomes))
    assert (cols["fr_sla"], cols["res_sla"], cols["sla_calendar"]) == (None, None, None)
