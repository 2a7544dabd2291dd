from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.intake import domain
from shared.errors import Conflict, DomainError
from shared.messages import IntakeTicket, ResolveTicket, RespondTicket

SH = ZoneInfo("Asia/Shanghai")


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2999, 12, 31)), st.integers(1, 999_999))
def test_ticket_number_is_date_and_six_digit_serial(day, serial):
    no = domain.ticket_number(day, serial)
    assert len(no) == 14 and no[:8] == day.strftime("%Y%m%d") and int(no[8:]) == serial


def test_numbering_day_is_in_helpdesk_tz():
    # 2026-11-23 17:30 UTC is already the 24th in Shanghai
    assert domain.numbering_day(datetime(2026, 11, 23, 17, 30, tzinfo=UTC), SH) == date(2026, 11, 24)
    assert domain.numbering_day(datetime(2026, 11, 23, 15, 59, tzinfo=UTC), SH) == date(2026, 11, 23)


def test_intake_needs_subject_or_description_and_no_future():
    now = datetime.now(UTC)
    base = {"channel": "web", "customer": {"name": "x"}}
    with pytest.raises(DomainError) as e:
        domain.check_intake(IntakeTicket.model_validate(base), now=now)
    assert e.value.field == "subject"
    msg = IntakeTicket.model_validate({**base, "subject": "s", "received_at": (now + timedelta(hours=1)).isoformat()})
    with pytest.raises(DomainError):
        domain.check_intake(msg, now=now)
    assert domain.check_intake(IntakeTicket.model_validate({**base, "description": "d"}), now=now) == now


ALL = domain.STATUSES


@pytest.mark.parametrize("action", list(domain.TRANSITIONS))
@pytest.mark.parametrize("status", ALL)
def test_state_machine_table(status, action):
    allowed, after = domain.TRANSITIONS[action]
    if status in allowed:
        assert domain.next_status(status, action) in ALL
    else:
        with pytest.raises(Conflict):
            domain.next_status(status, action)


def test_closed_is_terminal_and_resolve_needs_reopen():
    for action in domain.TRANSITIONS:
        with pytest.raises(Conflict):
            domain.next_status("closed", action)
    with pytest.raises(Conflict):
        domain.next_status("resolved", "resolve")
    assert domain.next_status("resolved", "reopen") == "in_progress"
    assert domain.next_status("waiting", "respond") == "waiting"


H = domain.Handling


@pytest.mark.parametrize(
    ("h", "outcome", "actor", "expected"),
    [
        (H(1, False, 0, "a", "a"), "resolved", "a", True),
        (H(0, False, 0, None, None), "resolved", "x", True),
        (H(2, False, 0, "a", "a"), "resolved", "a", False),
        (H(1, True, 0, "a", "a"), "resolved", "a", False),
        (H(1, False, 1, "a", "a"), "resolved", "a", False),
        (H(1, False, 0, "a", "b"), "resolved", "b", False),
        (H(1, False, 0, "a", "a"), "resolved", "b", False),
        (H(1, False, 0, "a", "a"), "partial", "a", False),
    ],
)
def test_first_contact_rule(h, outcome, actor, expected):
    assert domain.is_first_contact(h, outcome=outcome, actor=actor) is expected


def test_decide_respond_first_then_not():
    now = datetime.now(UTC)
    t = {"responses": 0}
    changes, event = domain.decide("respond", t, RespondTicket(ticket_no="20261123000001", actor="a"), now)
    assert event.first is True and changes == {"responses": 1, "first_response_at": now}
    changes, event = domain.decide("respond", {"responses": 1}, RespondTicket(ticket_no="20261123000001", actor="a"), now)
    assert event.first is False and "first_response_at" not in changes


def test_vague_solution_refused():
    with pytest.raises(ValueError):
        ResolveTicket(ticket_no="20261123000001", actor="a", outcome="resolved", solution="已处理")


def test_sla_state_from_timeline():
    events = [
        {"type": "sla.started", "data": {"metric": "first_response", "due_at": "t1", "policy": "P1"}},
        {"type": "sla.started", "data": {"metric": "resolution", "due_at": "t2", "policy": "P1"}},
        {"type": "sla.warning", "data": {"metric": "first_response", "due_at": "t1", "remaining_s": 60}},
        {"type": "sla.met", "data": {"metric": "first_response", "due_at": "t1", "met_at": "t0", "business_seconds": 5}},
    ]
    state = domain.sla_state(events)
    assert state["first_response"]["state"] == "met" and state["resolution"]["state"] == "running"
