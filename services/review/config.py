"""Review's own settings (``REVIEW_*``) and the business calendars it counts durations on."""

from __future__ import annotations

import os
import tomllib
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.business_time import Calendar, calendar_from_table

ROOT = Path(__file__).resolve().parent.parent.parent
SHIPPED_POLICY = ROOT / "services" / "sla" / "policy.toml"


class ReviewSettings(BaseSettings):
    """``REVIEW_BASE_URL`` (links in review.published), ``REVIEW_CALENDARS_FILE`` (the SLA policy file
    whose ``[calendars]`` table names the calendars; default ``SLA_POLICY_FILE``, else the shipped one),
    ``REVIEW_SNAPSHOT_HOUR`` (local hour on the 1st when last month is frozen)."""

    model_config = SettingsConfigDict(env_prefix="REVIEW_", extra="ignore", frozen=True)

    base_url: str = "http://127.0.0.1:8006"
    calendars_file: str | None = None
    snapshot_hour: int = Field(2, ge=0, le=23)
    snapshot_enabled: bool = True
    # A service that was down at 02:00 on the 1st still freezes last month when it comes back within this
    # many days; later, a month is frozen only on request (POST /v1/reviews/{period}/snapshot).
    snapshot_catchup_days: int = Field(7, ge=0, le=27)
    snapshot_poll_s: float = Field(60.0, gt=0)
    tickets_limit: int = Field(1000, ge=1, le=100_000)


def calendars_path(cfg: ReviewSettings) -> Path:
    return Path(cfg.calendars_file or os.environ.get("SLA_POLICY_FILE") or SHIPPED_POLICY)


def load_calendars(path: Path, tz: ZoneInfo) -> dict[str, Calendar]:
    """The ``[calendars]`` of the SLA policy file; a bad table refuses the start, naming the key."""
    doc = tomllib.loads(path.read_text(encoding="utf-8"))
    return {name: calendar_from_table(name, table, tz) for name, table in (doc.get("calendars") or {}).items()}


def business_time(calendars: dict[str, Calendar]):
    """``(calendar name, start, end) -> business seconds`` (None for an unknown calendar)."""

    def elapsed(name: str | None, start: datetime, end: datetime) -> float | None:
        cal = calendars.get(name) if name else None
        return None if cal is None else cal.elapsed(start, end)

    return elapsed
