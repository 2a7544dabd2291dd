"""Business time for SLA clocks: the pure calendar code lives in ``shared.business_time`` (the review
service counts durations on the same calendars); re-exported here for the SLA service."""

from shared.business_time import (  # noqa: F401
    MAX_DAYS, AlwaysOpen, Calendar, Span, WeeklyCalendar, calendar_from_table, check_spans, country_days, fmt,
    parse_spans,
)
