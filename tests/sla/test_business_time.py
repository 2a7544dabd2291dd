"""Business-time arithmetic: nights, weekends, China's holidays and make-up workdays, UTC input,
time zones without DST (and one with it), and properties that must hold for any input."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from services.sla.business_time import AlwaysOpen, WeeklyCalendar, country_days, parse_spans

SH = ZoneInfo("Asia/Shanghai")
H = 3600.0
NINE_TO_SIX = {d: parse_spans("09:00-18:00") for d in range(5)}


def cn_calendar(tz: ZoneInfo = SH) -> WeeklyCalendar:
    is_holiday, is_makeup = country_days("CN")
    return WeeklyCalendar("business", tz, NINE_TO_SIX, is_holiday=is_holiday, is_makeup=is_makeup)


def plain_calendar(tz: ZoneInfo = SH) -> WeeklyCalendar:
    return WeeklyCalendar("plain", tz, NINE_TO_SIX)


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)


BUSINESS = cn_calendar()


def test_within_one_day():
    assert BUSINESS.add(sh(2026, 11, 23, 9, 30), 2 * H) == sh(2026, 11, 23, 11, 30)
    assert BUSINESS.elapsed(sh(2026, 11, 23, 9, 30), sh(2026, 11, 23, 11, 30)) == 2 * H


def test_across_the_night():
    # Monday 17:00 + 2 business hours: 1 h Monday, 1 h Tuesday morning
    assert BUSINESS.add(sh(2026, 11, 23, 17, 0), 2 * H) == sh(2026, 11, 24, 10, 0)
    assert BUSINESS.elapsed(sh(2026, 11, 23, 17, 0), sh(2026, 11, 24, 10, 0)) == 2 * H


def test_outside_hours_starts_at_next_opening():
    assert BUSINESS.add(sh(2026, 11, 23, 20, 0), 15 * 60) == sh(2026, 11, 24, 9, 15)
    assert BUSINESS.add(sh(2026, 11, 24, 6, 0), H) == sh(2026, 11, 24, 10, 0)


def test_across_the_weekend():
    # Friday 17:00 + 2 h -> Monday 10:00
    assert BUSINESS.add(sh(2026, 11, 27, 17, 0), 2 * H) == sh(2026, 11, 30, 10, 0)
    assert BUSINESS.elapsed(sh(2026, 11, 28, 0, 0), sh(2026, 11, 30, 0, 0)) == 0


def test_national_day_holiday_skipped():
    # 2026-09-30 (Wed) 17:00 + 2 h: Oct 1-7 are off (Oct 3-4 a weekend anyway) -> Thu Oct 8 10:00
    assert BUSINESS.add(sh(2026, 9, 30, 17, 0), 2 * H) == sh(2026, 10, 8, 10, 0)


def test_make_up_saturday_is_a_working_day():
    # 2026-02-14 is a Saturday worked for the Spring Festival (调休); a plain calendar skips it
    assert BUSINESS.add(sh(2026, 2, 13, 17, 0), 2 * H) == sh(2026, 2, 14, 10, 0)
    assert plain_calendar().add(sh(2026, 2, 13, 17, 0), 2 * H) == sh(2026, 2, 16, 10, 0)
    assert BUSINESS.elapsed(sh(2026, 2, 14, 0, 0), sh(2026, 2, 15, 0, 0)) == 9 * H


def test_spring_festival_two_working_days():
    # Fri Feb 13 9:00 + 18 h = Fri (9) + make-up Sat Feb 14 (9); + 1 h more -> after the festival,
    # Feb 15-23 off (weekend, festival, substituted days), so Tue Feb 24 10:00
    assert BUSINESS.add(sh(2026, 2, 13, 9, 0), 18 * H) == sh(2026, 2, 14, 18, 0)
    assert BUSINESS.add(sh(2026, 2, 13, 9, 0), 19 * H) == sh(2026, 2, 24, 10, 0)


def test_utc_input_gives_same_answer():
    start = sh(2026, 11, 23, 17, 0)
    assert BUSINESS.add(start.astimezone(UTC), 2 * H) == BUSINESS.add(start, 2 * H)
    assert BUSINESS.elapsed(start.astimezone(UTC), sh(2026, 11, 24, 10, 0).astimezone(UTC)) == 2 * H


def test_other_dst_free_zone():
    tokyo = ZoneInfo("Asia/Tokyo")
    cal = plain_calendar(tokyo)
    start = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # 17:00 in Tokyo
    assert cal.add(start, 2 * H) == datetime(2026, 11, 24, 10, 0, tzinfo=tokyo)


def test_dst_zone_keeps_wall_hours():
    berlin = ZoneInfo("Europe/Berlin")
    cal = plain_calendar(berlin)
    # the Friday before the clocks go back (2026-10-25), then Monday: both 09:00 local
    assert cal.add(datetime(2026, 10, 23, 17, 0, tzinfo=berlin), 2 * H) == datetime(2026, 10, 26, 10, 0, tzinfo=berlin)


def test_split_shift_and_naive_refused():
    cal = WeeklyCalendar("split", SH, {0: parse_spans("09:00-12:00,13:00-18:00")})
    assert cal.add(sh(2026, 11, 23, 11, 0), 2 * H) == sh(2026, 11, 23, 14, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        cal.add(datetime(2026, 11, 23, 11, 0), 60)


@pytest.mark.parametrize("text", ["9-18", "18:00-09:00", "09:00-12:00,11:00-13:00", "09:00-25:00", "09:60-10:00"])
def test_bad_spans_refused(text):
    with pytest.raises(ValueError):
        parse_spans(text)


def test_unknown_country_refused():
    with pytest.raises(ValueError, match="unknown country"):
        country_days("XX")


def test_always_open():
    cal = AlwaysOpen()
    start = sh(2026, 10, 1, 23, 50)
    assert cal.add(start, 15 * 60) == sh(2026, 10, 2, 0, 5)
    assert cal.elapsed(start, sh(2026, 10, 2, 0, 5)) == 900
    assert cal.elapsed(sh(2026, 10, 2, 0, 5), start) == 0


moments = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31),
                       timezones=st.sampled_from([UTC, SH, ZoneInfo("Asia/Tokyo")]))
durations = st.floats(min_value=0, max_value=40 * 9 * H, allow_nan=False)


@settings(max_examples=150, deadline=None)
@given(start=moments, seconds=durations)
def test_add_then_elapsed_round_trips(start, seconds):
    end = BUSINESS.add(start, seconds)
    assert end >= start
    assert BUSINESS.elapsed(start, end) == pytest.approx(seconds, abs=1e-3)


@settings(max_examples=150, deadline=None)
@given(a=moments, b=moments, c=moments)
def test_elapsed_is_additive_and_bounded(a, b, c):
    a, b, c = sorted((a, b, c))
    ab, bc, ac = BUSINESS.elapsed(a, b), BUSINESS.elapsed(b, c), BUSINESS.elapsed(a, c)
    assert ac == pytest.approx(ab + bc, abs=1e-3)
    assert 0 <= ac <= (c - a).total_seconds() + 1e-6


@settings(max_examples=100, deadline=None)
@given(start=moments, x=durations, y=durations)
def test_add_is_monotonic_and_composes(start, x, y):
    assume(x <= y)
    assert BUSINESS.add(start, x) <= BUSINESS.add(start, y)
    # the same business instant (18:00 one day and 09:00 the next are one instant in business time)
    composed = BUSINESS.add(BUSINESS.add(start, x), y - x)
    assert BUSINESS.elapsed(start, composed) == pytest.approx(y, abs=1e-3)
    assert BUSINESS.elapsed(composed, BUSINESS.add(start, y)) == pytest.approx(0, abs=1e-3)


@settings(max_examples=100, deadline=None)
@given(start=moments, seconds=st.floats(min_value=0.001, max_value=30 * 86400, allow_nan=False))
def test_deadline_lands_in_working_time(start, seconds):
    end = BUSINESS.add(start, seconds).astimezone(SH)
    day = end.date()
    assert BUSINESS._spans_of(day), f"{end} is on a day off"
    minute = end.hour * 60 + end.minute + (end.second + end.microsecond / 1e6) / 60
    assert 9 * 60 < minute <= 18 * 60


@settings(max_examples=100, deadline=None)
@given(start=moments, seconds=durations)
def test_always_open_is_wall_time(start, seconds):
    cal = AlwaysOpen()
    assert cal.elapsed(start, cal.add(start, seconds)) == pytest.approx(seconds, abs=1e-6)
