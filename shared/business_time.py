"""Business time (shared by the SLA and review services): how many seconds an SLA clock counts between two instants, and when it reaches N.

Two kinds of calendar:

* ``AlwaysOpen`` (24×7): business time is wall time.
* ``WeeklyCalendar``: working hours per weekday in a time zone (e.g. Mon–Fri 09:00–18:00
  ``Asia/Shanghai``), minus public holidays, plus make-up working days (调休上班日: a Saturday or
  Sunday worked in exchange for a longer holiday), both taken from the ``holidays`` package.

Inputs may be in any time zone (UTC included); the arithmetic runs on POSIX timestamps, and a
day's working spans are placed with ``zoneinfo`` so a zone with DST still gets its wall hours.
Pure: no I/O beyond the ``holidays`` package's tables.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

import holidays

Span = tuple[int, int]  # minutes since local midnight: [start, end), 0 <= start < end <= 1440
MAX_DAYS = 3660  # ten years of searching for working time before giving up


class Calendar(Protocol):
    name: str
    day_seconds: float  # one working day ("1wd" in a policy)

    def elapsed(self, start: datetime, end: datetime) -> float: ...

    def add(self, start: datetime, seconds: float) -> datetime: ...


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("business time needs timezone-aware datetimes")
    return moment


class AlwaysOpen:
    """24×7: every second counts."""

    def __init__(self, name: str = "24x7") -> None:
        self.name = name
        self.day_seconds = 86400.0

    def elapsed(self, start: datetime, end: datetime) -> float:
        return max(0.0, (_aware(end) - _aware(start)).total_seconds())

    def add(self, start: datetime, seconds: float) -> datetime:
        return _aware(start) + timedelta(seconds=max(0.0, seconds))


class WeeklyCalendar:
    """Weekly working spans in ``tz``; ``is_holiday`` days are off, ``is_makeup`` days work
    ``makeup_spans`` (a normal weekday's hours) even when they fall on a weekend."""

    def __init__(
        self, name: str, tz: ZoneInfo, week: Mapping[int, Iterable[Span]], *,
        is_holiday: Callable[[date], bool] = lambda d: False,
        is_makeup: Callable[[date], bool] = lambda d: False,
        makeup_spans: Iterable[Span] | None = None,
    ) -> None:
        self.name, self.tz = name, tz
        self.week = {day: tuple(check_spans(spans)) for day, spans in week.items()}
        if not any(self.week.values()):
            raise ValueError(f"calendar {name}: no working hours in the week")
        first = next(self.week[d] for d in sorted(self.week) if self.week[d])
        self.makeup = tuple(check_spans(makeup_spans)) if makeup_spans is not None else first
        self.day_seconds = float(sum(b - a for a, b in first) * 60)
        self.is_holiday, self.is_makeup = is_holiday, is_makeup
        self._day = functools.lru_cache(maxsize=8192)(self._spans_of)

    def _spans_of(self, day: date) -> tuple[tuple[float, float], ...]:
        if self.is_makeup(day):
            spans = self.makeup
        elif self.is_holiday(day):
            spans = ()
        else:
            spans = self.week.get(day.weekday(), ())
        midnight = datetime(day.year, day.month, day.day, tzinfo=self.tz)
        return tuple(
            ((midnight + timedelta(minutes=a)).timestamp(), (midnight + timedelta(minutes=b)).timestamp())
            for a, b in spans
        )

    def _days_from(self, ts: float) -> Iterable[tuple[tuple[float, float], ...]]:
        day = datetime.fromtimestamp(ts, self.tz).date() - timedelta(days=1)  # a span may start before ts
        for _ in range(MAX_DAYS):
            yield self._day(day)
            day += timedelta(days=1)
        raise ValueError(f"calendar {self.name}: no working time within {MAX_DAYS} days")

    def elapsed(self, start: datetime, end: datetime) -> float:
        """Working seconds in ``[start, end)`` (0 when ``end <= start``)."""
        a, b = _aware(start).timestamp(), _aware(end).timestamp()
        total = 0.0
        if b <= a:
            return total
        day = datetime.fromtimestamp(a, self.tz).date() - timedelta(days=1)
        last = datetime.fromtimestamp(b, self.tz).date()
        while day <= last:
            for s, e in self._day(day):
                lo, hi = max(s, a), min(e, b)
                if hi > lo:
                    total += hi - lo
            day += timedelta(days=1)
        return total

    def add(self, start: datetime, seconds: float) -> datetime:
        """The instant at which ``seconds`` working seconds have passed since ``start``."""
        t = _aware(start).timestamp()
        remaining = max(0.0, seconds)
        if remaining == 0:
            return start
        for spans in self._days_from(t):
            for s, e in spans:
                lo = max(s, t)
                if lo >= e:
                    continue
                if remaining <= e - lo:
                    return datetime.fromtimestamp(lo + remaining, UTC)
                remaining -= e - lo
        raise AssertionError("unreachable")


def check_spans(spans: Iterable[Span]) -> list[Span]:
    """Sorted, non-overlapping spans within one day, or ``ValueError`` saying what is wrong."""
    out = sorted((int(a), int(b)) for a, b in spans)
    for a, b in out:
        if not 0 <= a < b <= 1440:
            raise ValueError(f"working span {fmt(a)}-{fmt(b)} is not within one day")
    for (_, b1), (a2, _) in itertools.pairwise(out):
        if a2 < b1:
            raise ValueError(f"working spans overlap at {fmt(a2)}")
    return out


def fmt(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_spans(text: str) -> list[Span]:
    """``"09:00-12:00, 13:00-18:00"`` -> ``[(540, 720), (780, 1080)]`` (``24:00`` allowed as an end)."""
    spans = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        lo, sep, hi = part.partition("-")
        if not sep:
            raise ValueError(f"working span {part!r} is not HH:MM-HH:MM")
        spans.append((_minutes(lo), _minutes(hi)))
    return check_spans(spans)


def _minutes(hhmm: str) -> int:
    h, sep, m = hhmm.strip().partition(":")
    if not sep or not h.isdigit() or not m.isdigit() or len(m) != 2 or int(m) > 59:
        raise ValueError(f"time {hhmm.strip()!r} is not HH:MM")
    return int(h) * 60 + int(m)


def country_days(code: str) -> tuple[Callable[[date], bool], Callable[[date], bool]]:
    """``(is_holiday, is_makeup)`` for a country of the ``holidays`` package (``CN``: mainland China,
    with its 调休 make-up working days from ``weekend_workdays``). Years load lazily."""
    try:
        table = holidays.country_holidays(code)
    except NotImplementedError:
        raise ValueError(f"holidays: unknown country code {code!r}") from None

    def is_holiday(day: date) -> bool:
        return day in table

    def is_makeup(day: date) -> bool:
        _ = day in table  # loads the year, which fills weekend_workdays
        return day in getattr(table, "weekend_workdays", ())

    return is_holiday, is_makeup


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def calendar_from_table(name: str, table: dict, default_tz: ZoneInfo) -> Calendar:
    """A calendar from its policy-file table (``hours = "always"`` or ``{mon = "09:00-18:00", ...}``,
    optional ``timezone``, ``holidays`` country code, ``makeup_hours``); ``ValueError`` naming the key."""
    hours = table.get("hours")
    if hours == "always":
        return AlwaysOpen(name)
    if not isinstance(hours, dict):
        raise ValueError(  # noqa: TRY004 - a bad policy file (refuses the start), not a caller's type error
            f"calendars.{name}.hours: must be \"always\" or a table of weekday = \"HH:MM-HH:MM\"")
    try:
        tz = ZoneInfo(table["timezone"]) if table.get("timezone") else default_tz
    except (KeyError, ValueError):
        raise ValueError(f"calendars.{name}.timezone: unknown time zone {table.get('timezone')!r}") from None
    week = {WEEKDAYS.index(day): parse_spans(text) for day, text in hours.items()}
    kwargs: dict = {}
    if table.get("holidays"):
        try:
            kwargs["is_holiday"], kwargs["is_makeup"] = country_days(table["holidays"])
        except ValueError as exc:
            raise ValueError(f"calendars.{name}.holidays: {exc}") from None
    if table.get("makeup_hours"):
        kwargs["makeup_spans"] = parse_spans(table["makeup_hours"])
    try:
        return WeeklyCalendar(name, tz, week, **kwargs)
    except ValueError as exc:
        raise ValueError(f"calendars.{name}: {exc}") from None
