"""Survey's own settings (env prefix ``SURVEY_``); the link base is ``SURVEY_BASE_URL`` (shared)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.survey.domain import Timing

DAY = 86_400.0


class SurveyConfig(BaseSettings):
    """Delays are seconds. A reminder time of 0 (or not before expiry) sends no reminder."""

    model_config = SettingsConfigDict(env_prefix="SURVEY_", extra="ignore", frozen=True)

    delay_s: float = Field(0.0, ge=0, description="resolution -> survey sent")
    complaint_delay_s: float | None = Field(None, ge=0, description="same, for complaints (default: delay_s)")
    reminder_after_s: float = Field(2 * DAY, ge=0, description="sent -> one reminder if unanswered")
    expire_after_s: float = Field(7 * DAY, gt=0, description="sent -> link expires")
    repeat_window_days: int = Field(30, ge=1, description="window of the repeat-complainant rule")
    scheduler_poll_s: float = Field(30.0, gt=0, description="scheduler's fallback poll (NOTIFY wakes it)")
    scheduler_batch: int = Field(100, ge=1)

    def timing(self) -> Timing:
        return Timing(
            delay_s=self.delay_s,
            complaint_delay_s=self.complaint_delay_s,
            reminder_after_s=self.reminder_after_s,
            expire_after_s=self.expire_after_s,
        )
