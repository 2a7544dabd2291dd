"""Survey's pure rules: timing, the meaning of an answer, the repeat-complainant flag, the page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.survey import domain, page
from services.survey.domain import SurveyAnswer, Timing
from shared.errors import Conflict, NotFound
from shared.masking import mask_text

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
seconds = st.floats(min_value=0, max_value=30 * 86_400, allow_nan=False)
moments = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1)).map(
    lambda d: d.replace(tzinfo=UTC))


@given(delay=seconds, complaint_delay=st.none() | seconds, complaint=st.booleans(), resolved=moments)
def test_send_at_is_resolution_plus_the_applicable_delay(delay, complaint_delay, complaint, resolved):
    t = Timing(delay_s=delay, complaint_delay_s=complaint_delay)
    expected = complaint_delay if complaint and complaint_delay is not None else delay
    assert t.send_at(resolved, complaint=complaint) - resolved == timedelta(seconds=expected)


@given(remind=seconds, expire=seconds.filter(lambda s: s > 0), sent=moments)
def test_reminder_comes_strictly_before_expiry_or_not_at_all(remind, expire, sent):
    remind_at, expires_at = Timing(reminder_after_s=remind, expire_after_s=expire).after_send(sent)
    assert expires_at == sent + timedelta(seconds=expire)
    if remind_at is None:
        assert timedelta(seconds=remind) == timedelta(0) or timedelta(seconds=remind) >= timedelta(seconds=expire)
    else:
        assert sent < remind_at < expires_at


def _row(status, *, send_at=T0, remind_at=None, reminded_at=None, expires_at=None):
    return {"status": status, "send_at": send_at, "remind_at": remind_at, "reminded_at": reminded_at,
            "expires_at": expires_at}


rows = st.one_of(
    st.builds(lambda s: _row("scheduled", send_at=s), moments),
    st.builds(lambda r, e, done: _row("sent", remind_at=min(r, e) if r else None, expires_at=e,
                                      reminded_at=T0 if done else None),
              st.none() | moments, moments, st.booleans()),
    st.sampled_from(["answered", "expired", "cancelled"]).map(lambda s: _row(s, expires_at=T0)),
)


@given(row=rows, now=moments)
def test_a_step_is_due_exactly_when_the_due_moment_has_come(row, now):
    due = domain.due_at(row)
    step = domain.next_step(row, now)
    assert (step is not None) == (due is not None and due <= now)


@given(row=rows, now=moments)
def test_expiry_wins_over_a_late_reminder(row, now):
    if row["status"] == "sent" and row["expires_at"] <= now:
        assert domain.next_step(row, now) == "expire"


def test_lifecycle_send_remind_expire():
    t = Timing(reminder_after_s=3600, expire_after_s=7200)
    row = _row("scheduled", send_at=T0)
    assert domain.next_step(row, T0 - timedelta(seconds=1)) is None
    assert domain.next_step(row, T0) == "send"
    remind_at, expires_at = t.after_send(T0)
    row = _row("sent", remind_at=remind_at, expires_at=expires_at)
    assert domain.due_at(row) == remind_at and domain.next_step(row, remind_at) == "remind"
    row["reminded_at"] = remind_at
    assert domain.due_at(row) == expires_at and domain.next_step(row, remind_at) is None
    assert domain.next_step(row, expires_at) == "expire"


@given(resolved=st.booleans(), overall=st.integers(1, 5), speed=st.integers(1, 5), attitude=st.integers(1, 5))
def test_satisfied_and_negative(resolved, overall, speed, attitude):
    v = domain.judge(SurveyAnswer(resolved=resolved, speed=speed, attitude=attitude, overall=overall))
    assert v.satisfied == (overall >= 4)
    assert v.negative == ((not resolved) or overall <= 2)
    assert ("unresolved" in v.reasons) == (not resolved) and ("dissatisfied" in v.reasons) == (overall <= 2)


def test_reason_text_names_what_went_wrong():
    a = SurveyAnswer(resolved=False, speed=1, attitude=2, overall=1, comment="等了三天")
    text = domain.judge(a).reason_text(a)
    assert "not resolved" in text and "1/5" in text and "等了三天" in text


@pytest.mark.parametrize("body, field", [
    ({"resolved": "yes", "speed": 3, "attitude": 3, "overall": 3}, "resolved"),
    ({"resolved": True, "speed": "3", "attitude": 3, "overall": 3}, "speed"),
    ({"resolved": True, "speed": 3, "attitude": 0, "overall": 3}, "attitude"),
    ({"resolved": True, "speed": 3, "attitude": 3, "overall": 6}, "overall"),
    ({"resolved": True, "speed": 3, "attitude": 3}, "overall"),
    ({"resolved": True, "speed": 3.5, "attitude": 3, "overall": 3}, "speed"),
    ({"resolved": True, "speed": 3, "attitude": 3, "overall": 3, "comment": "x" * 2001}, "comment"),
    ({"resolved": True, "speed": 3, "attitude": 3, "overall": 3, "stars": 5}, "stars"),
])
def test_answer_validation_names_the_field(body, field):
    with pytest.raises(ValidationError) as exc:
        SurveyAnswer.model_validate(body)
    assert [e["loc"][0] for e in exc.value.errors()] == [field]


def test_form_to_body():
    body = domain.form_to_body({"resolved": ["yes"], "speed": ["4"], "attitude": ["5"], "overall": ["x"],
                                "comment": [""], "lang": ["en"]})
    assert body == {"resolved": True, "speed": 4, "attitude": 5, "overall": "x", "comment": None}
    assert domain.form_to_body({"resolved": ["no"]}) == {"resolved": False}


@given(history=st.lists(st.tuples(st.sampled_from(["A", "B", "C"]), st.integers(0, 60)), max_size=8))
def test_repeat_means_two_tickets_within_the_window(history):
    now = T0
    entries = [(ticket, now - timedelta(days=days)) for ticket, days in history]
    recent = {ticket for ticket, days in history if days <= 30}
    assert domain.is_repeat(entries, now, window_days=30) == (len(recent) >= 2)


def test_customer_key_prefers_id_then_masked_phone_then_email():
    assert domain.customer_key({"id": "C-1", "phone": "139****5678"}) == "id:C-1"
    assert domain.customer_key({"id": None, "phone": "139****5678"}) == "phone:139****5678"
    assert domain.customer_key({"email": "L***@Example.com"}) == "email:l***@example.com"
    assert domain.customer_key({"name": "x"}) is None and domain.customer_key(None) is None


def test_tokens_are_long_random_and_survive_masking():
    tokens = {domain.new_token() for _ in range(500)}
    assert len(tokens) == 500
    assert all(len(t) == 32 and mask_text(t) == t for t in tokens)  # 24 random bytes = 192 bits
    assert domain.survey_url("http://x:8005/", "abc") == "http://x:8005/s/abc"


def test_language():
    assert domain.language(None) == "zh-CN" and domain.language("en") == "en"
    assert domain.language("en-US") == "en" and domain.language("fr") == "zh-CN"


def test_answerable_states():
    future = T0 + timedelta(days=1)
    domain.check_answerable(_row("sent", expires_at=future), T0)
    with pytest.raises(NotFound):
        domain.check_answerable(None, T0)
    with pytest.raises(NotFound):
        domain.check_answerable(_row("scheduled"), T0)
    with pytest.raises(Conflict):
        domain.check_answerable(_row("answered"), T0)
    with pytest.raises(domain.Gone):
        domain.check_answerable(_row("sent", expires_at=T0), T0)
    assert domain.page_state(_row("cancelled"), T0) == "cancelled"
    assert domain.page_state(_row("expired"), T0) == "expired"


def test_page_renders_in_chinese_and_english_and_escapes():
    zh = page.render_form(lang="zh-CN", ticket_no="<b>20261123000001</b>")
    assert "服务满意度回访" in zh and 'lang="zh-CN"' in zh and "&lt;b&gt;" in zh and "<script" not in zh
    assert zh.count('type="radio"') == 2 + 5 * 3
    en = page.render_form(lang="en", ticket_no="1", values={"speed": 4}, errors={"overall": "Please choose one"})
    assert "Was your problem solved?" in en and 'id="speed-4" name="speed" value="4" checked' in en
    assert 'id="overall-error"' in en
    assert "已过期" in page.render_closed(lang="zh-CN", state="expired")
    assert "1 小时" in page.render_thanks(lang="zh-CN", negative=True)
    assert page.page_language("en", None) == "en" and page.page_language("en", "zh-CN") == "zh-CN"


@given(st.integers(1, 4).flatmap(lambda n: st.tuples(st.just(n), st.booleans(), st.randoms(use_true_random=False))))
def test_any_handling_order_ends_with_the_latest_resolution_surveyed(case):
    """Resolve/reopen events of one ticket (intake seq order), handled in any order: the live survey
    at the end belongs to the last event if it is a resolution, and there is none if it is a reopen."""
    n, ends_reopened, rnd = case
    events = []
    for k in range(n):
        events.append(("resolve", 2 + 2 * k))
        if k < n - 1 or ends_reopened:
            events.append(("reopen", 3 + 2 * k))
    last_kind, last_seq = events[-1]
    rnd.shuffle(events)
    reopened, live = 0, None
    for kind, seq in events:
        if kind == "resolve":
            if domain.on_resolution(seq=seq, reopened_seq=reopened, live_seq=live) != "skip":
                live = seq
        else:
            reopened = max(reopened, seq)
            if domain.reopen_withdraws(seq=seq, live_seq=live):
                live = None
    assert live == (last_seq if last_kind == "resolve" else None)
