"""Review periods — pure. A period names local calendar days in ``HELPDESK_TZ``:

* ``2026-11``                 a calendar month (the default review)
* ``2026-W47``                an ISO week (Monday to Sunday)
* ``2026-Q4``                 a quarter
* ``2026-11-01..2026-11-15``  any date range, both days included

``start``/``end`` are the local midnights that bound it (``[start, end)``), as aware datetimes. The
previous period is the one of the same kind just before (for a range: as many days, just before).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from shared.errors import DomainError

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")
_RANGE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})$")
MAX_RANGE_DAYS = 3 * 366


@dataclass(frozen=True)
class Period:
    name: str
    kind: str  # month | week | quarter | range
    first: date  # first day
    last: date  # last day (included)

    def start(self, tz: ZoneInfo) -> datetime:
        return datetime(self.first.year, self.first.month, self.first.day, tzinfo=tz)

    def end(self, tz: ZoneInfo) -> datetime:
        after = self.last + timedelta(days=1)
        return datetime(after.year, after.month, after.day, tzinfo=tz)

    def previous(self) -> Period:
        if self.kind == "month":
            return month(self.first - timedelta(days=1))
        if self.kind == "week":
            return week(self.first - timedelta(days=7))
        if self.kind == "quarter":
            return quarter(self.first - timedelta(days=1))
        days = (self.last - self.first).days + 1
        return date_range(self.first - timedelta(days=days), self.first - timedelta(days=1))

    def following(self) -> Period:
        if self.kind == "month":
            return month(self.last + timedelta(days=1))
        if self.kind == "week":
            return week(self.first + timedelta(days=7))
        if self.kind == "quarter":
            return quarter(self.last + timedelta(days=1))
        days = (self.last - self.first).days + 1
        return date_range(self.last + timedelta(days=1), self.last + timedelta(days=days))


def month(day: date) -> Period:
    first = day.replace(day=1)
    nxt = (first + timedelta(days=32)).replace(day=1)
    return Period(f"{first.year:04d}-{first.month:02d}", "month", first, nxt - timedelta(days=1))


def week(day: date) -> Period:
    year, num, _ = day.isocalendar()
    first = date.fromisocalendar(year, num, 1)
    return Period(f"{year:04d}-W{num:02d}", "week", first, first + timedelta(days=6))


def quarter(day: date) -> Period:
    q = (day.month - 1) // 3 + 1
    first = date(day.year, 3 * q - 2, 1)
    last = month(date(day.year, 3 * q, 1)).last
    return Period(f"{day.year:04d}-Q{q}", "quarter", first, last)


def date_range(first: date, last: date) -> Period:
    return Period(f"{first.isoformat()}..{last.isoformat()}", "range", first, last)


def parse(text: str) -> Period:
    """The period ``text`` names, or ``DomainError`` (422) naming it."""
    try:
        if m := _MONTH.match(text):
            return month(date(int(m[1]), int(m[2]), 1))
        if m := _WEEK.match(text):
            return week(date.fromisocalendar(int(m[1]), int(m[2]), 1))
        if m := _QUARTER.match(text):
            return quarter(date(int(m[1]), 3 * int(m[2]) - 2, 1))
        if m := _RANGE.match(text):
            first, last = date.fromisoformat(m[1]), date.fromisoformat(m[2])
            if last < first:
                raise DomainError("period", f"{text!r}: the range ends before it starts")
            if (last - first).days >= MAX_RANGE_DAYS:
                raise DomainError("period", f"{text!r}: a range may span at most {MAX_RANGE_DAYS} days")
            return date_range(first, last)
    except ValueError:
        pass
    else:
        raise DomainError("period", f"{text!r} is not a period: use YYYY-MM, YYYY-Www, YYYY-Qn or "
                                    "YYYY-MM-DD..YYYY-MM-DD")
    raise DomainError("period", f"{text!r} is not a valid date, week or month")


def parse_past(text: str, *, now: datetime, tz: ZoneInfo) -> Period:
    """``parse``, refusing a period that has not started yet (422 naming it)."""
    period = parse(text)
    if period.start(tz) > now:
        raise DomainError("period", f"{text!r} is in the future (it starts {period.first.isoformat()})")
    return period


def current_month(now: datetime, tz: ZoneInfo) -> Period:
    return month(now.astimezone(tz).date())


def trend_months(period: Period, count: int = 12) -> list[Period]:
    """The ``count`` calendar months ending with the one that holds the period's last day, oldest first."""
    months = [month(period.last)]
    while len(months) < count:
        months.insert(0, months[0].previous())
    return months


def due_snapshot(now: datetime, tz: ZoneInfo, hour: int = 2) -> Period:
    """The month that should be frozen by ``now``: last month once 02:00 (``hour``) on the 1st has
    passed in ``tz``, else the month before it."""
    local = now.astimezone(tz)
    this = month(local.date())
    freeze_at = datetime(this.first.year, this.first.month, 1, hour, tzinfo=tz)
    last = this.previous()
    return last if now >= freeze_at else last.previous()
