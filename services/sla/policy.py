"""SLA policies from a TOML file: calendars, targets per priority, overrides, the call-back target.

``load`` validates everything up front (a bad file refuses the start with a message naming the
key); ``Policies.target`` answers "which target applies to this clock" for a ticket's priority,
category and customer tier.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from services.sla.business_time import Calendar, calendar_from_table, parse_spans
from shared.events import CATEGORIES

DEFAULT_FILE = Path(__file__).parent / "policy.toml"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
PRIORITIES = ("P1", "P2", "P3", "P4")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|wd)\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600}


class PolicyError(ValueError):
    """The policy file is unusable; the message says where."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _duration(value: str) -> str:
    m = _DURATION.match(value)
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"{value!r} is not a positive duration like 15m, 4h, 90s or 1wd")
    return value


class CalendarSpec(_Strict):
    hours: str | dict[str, str]
    timezone: str | None = None
    holidays: str = ""
    makeup_hours: str | None = None

    @field_validator("hours")
    @classmethod
    def _hours(cls, v: str | dict[str, str]) -> str | dict[str, str]:
        if isinstance(v, str):
            if v != "always":
                raise ValueError('must be "always" or a table of weekday = "HH:MM-HH:MM"')
            return v
        for day, spans in v.items():
            if day not in WEEKDAYS:
                raise ValueError(f"unknown weekday {day!r} (use {', '.join(WEEKDAYS)})")
            parse_spans(spans)
        return v


class TargetSpec(_Strict):
    calendar: str
    first_response: str
    resolution: str
    next_update: str | None = None  # the longest a customer waits for news while the ticket is handled

    @field_validator("first_response", "resolution")
    @classmethod
    def _d(cls, v: str) -> str:
        return _duration(v)

    @field_validator("next_update")
    @classmethod
    def _optional(cls, v: str | None) -> str | None:
        return None if v is None else _duration(v)


class Match(_Strict):
    priority: Literal["P1", "P2", "P3", "P4"] | None = None
    category: str | None = None
    tier: Literal["vip", "standard"] | None = None


class Override(_Strict):
    name: str = Field(min_length=1)
    match: Match
    calendar: str | None = None
    first_response: str | None = None
    resolution: str | None = None
    next_update: str | None = None

    @field_validator("first_response", "resolution", "next_update")
    @classmethod
    def _d(cls, v: str | None) -> str | None:
        return None if v is None else _duration(v)


class CallbackSpec(_Strict):
    calendar: str = "24x7"
    target: str = "1h"

    @field_validator("target")
    @classmethod
    def _d(cls, v: str) -> str:
        return _duration(v)


class RevisitSpec(_Strict):
    """The follow-up call after resolution (records #14): complaints within 2 working days by default;
    other categories only when listed."""

    calendar: str | None = None  # default: P4's calendar (the business calendar)
    target: str = "2wd"
    complaints: bool = True
    categories: list[str] = []

    @field_validator("target")
    @classmethod
    def _d(cls, v: str) -> str:
        return _duration(v)


class StepSpec(_Strict):
    step: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    limit: str

    @field_validator("limit")
    @classmethod
    def _d(cls, v: str) -> str:
        return _duration(v)


class StepsSpec(_Strict):
    """A category's sequence of steps (问题分类与处理时效表), each with its own time limit."""

    calendar: str | None = None  # default: P4's calendar
    sequence: list[StepSpec] = Field(min_length=1)

    @field_validator("sequence")
    @classmethod
    def _unique(cls, v: list[StepSpec]) -> list[StepSpec]:
        names = [s.step for s in v]
        if len(set(names)) != len(names):
            raise ValueError("step names must be unique within a sequence")
        return v


class PolicyFile(_Strict):
    warning_at: float = Field(0.8, gt=0, lt=1)
    unrouted_priority: Literal["P1", "P2", "P3", "P4"] = "P3"
    calendars: dict[str, CalendarSpec]
    priorities: dict[Literal["P1", "P2", "P3", "P4"], TargetSpec]
    callback: CallbackSpec = CallbackSpec()
    overrides: list[Override] = []
    # records (#14)
    revisit: RevisitSpec = RevisitSpec()
    steps: dict[str, StepsSpec] = {}


@dataclass(frozen=True)
class Target:
    """What a clock runs against: the policy's name, its calendar and the target in business seconds."""

    policy: str
    calendar: str
    seconds: float


@dataclass(frozen=True)
class Policies:
    warning_at: float
    unrouted_priority: str
    calendars: dict[str, Calendar]
    spec: PolicyFile

    def calendar(self, name: str) -> Calendar:
        return self.calendars[name]

    def target(self, metric: str, *, priority: str, category: str | None = None, tier: str | None = None) -> Target:
        """The target for ``metric`` (``first_response`` / ``resolution`` / ``callback``)."""
        if metric == "callback":
            cb = self.spec.callback
            return Target("callback", cb.calendar, seconds(cb.target, self.calendars[cb.calendar]))
        base = self.spec.priorities[priority]  # type: ignore[index]
        name, calendar, duration = f"default:{priority}", base.calendar, getattr(base, metric)
        best = _best_override(self.spec.overrides, priority=priority, category=category, tier=tier)
        if best is not None:
            name = f"{best.name}:{priority}"
            calendar = best.calendar or calendar
            duration = getattr(best, metric) or duration
        return Target(name, calendar, seconds(duration, self.calendars[calendar]))


    def next_update_target(self, *, priority: str, category: str | None = None,
                           tier: str | None = None) -> Target | None:
        """The ``next_update`` target, or None when the policy sets none for this priority."""
        base = self.spec.priorities[priority]  # type: ignore[index]
        best = _best_override(self.spec.overrides, priority=priority, category=category, tier=tier)
        duration = (best.next_update if best else None) or base.next_update
        if duration is None:
            return None
        calendar = (best.calendar if best else None) or base.calendar
        name = f"{best.name}:{priority}" if best and best.next_update else f"default:{priority}"
        return Target(name, calendar, seconds(duration, self.calendars[calendar]))

    # ---- records (#14): the revisit clock and per-category step clocks ----
    def revisit_target(self, *, category: str | None, complaint: bool) -> Target | None:
        """The follow-up call's target for a resolved ticket, or ``None`` when the policy asks none."""
        r = self.spec.revisit
        if not ((complaint and r.complaints) or (category and category in r.categories)):
            return None
        calendar = r.calendar or self.spec.priorities["P4"].calendar
        return Target("revisit", calendar, seconds(r.target, self.calendars[calendar]))

    def steps(self, category: str | None) -> list[tuple[str, Target]]:
        """The category's steps in order, each with its target (policy ``steps:<category>:<limit>``)."""
        spec = self.spec.steps.get(category or "")
        if spec is None:
            return []
        calendar = spec.calendar or self.spec.priorities["P4"].calendar
        return [(s.step, Target(f"steps:{category}:{s.limit}", calendar, seconds(s.limit, self.calendars[calendar])))
                for s in spec.sequence]


def _best_override(overrides: list[Override], **facts: str | None) -> Override | None:
    best, score = None, 0
    for o in overrides:
        keys = o.match.model_dump(exclude_none=True)
        if keys and all(facts.get(k) == v for k, v in keys.items()) and len(keys) >= score:
            best, score = o, len(keys)
    return best


def seconds(duration: str, calendar: Calendar) -> float:
    m = _DURATION.match(duration)
    assert m is not None  # validated on load
    value, unit = float(m.group(1)), m.group(2)
    return value * (calendar.day_seconds if unit == "wd" else _UNIT[unit])


def build_calendar(name: str, spec: CalendarSpec, default_tz: ZoneInfo) -> Calendar:
    try:
        return calendar_from_table(name, spec.model_dump(), default_tz)
    except ValueError as exc:
        raise PolicyError(str(exc)) from None


def parse(doc: dict[str, Any], *, tz: ZoneInfo, source: str = "policy") -> Policies:
    try:
        spec = PolicyFile.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise PolicyError(f"{source}: {where}: {first['msg']}") from None
    calendars = {name: build_calendar(name, c, tz) for name, c in spec.calendars.items()}
    for prio in PRIORITIES:
        if prio not in spec.priorities:
            raise PolicyError(f"{source}: priorities.{prio}: missing")
    refs = [(f"priorities.{p}", t.calendar) for p, t in spec.priorities.items()]
    refs += [(f"overrides.{o.name}", o.calendar) for o in spec.overrides if o.calendar]
    refs.append(("callback", spec.callback.calendar))
    refs += [("revisit", spec.revisit.calendar)] if spec.revisit.calendar else []
    refs += [(f"steps.{c}", st.calendar) for c, st in spec.steps.items() if st.calendar]
    for category in spec.steps:
        if category not in CATEGORIES:
            raise PolicyError(f"{source}: steps.{category}: unknown category (one of {', '.join(CATEGORIES)})")
    for where, cal in refs:
        if cal not in calendars:
            raise PolicyError(f"{source}: {where}.calendar: unknown calendar {cal!r}")
    return Policies(spec.warning_at, spec.unrouted_priority, calendars, spec)


def load(path: Path | str | None, *, tz: ZoneInfo) -> Policies:
    """Read and validate the policy file (default: the shipped contract policy)."""
    file = Path(path) if path else DEFAULT_FILE
    try:
        doc = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(f"{file}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{file}: not valid TOML: {exc}") from None
    return parse(doc, tz=tz, source=str(file))
