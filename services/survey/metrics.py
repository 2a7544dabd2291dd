"""Survey's Prometheus metrics (contract names where the contract fixes them)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RESPONSES = Counter("helpdesk_survey_responses_total", "Survey answers; satisfied = overall >= 4", ["satisfied"])
SCORE = Histogram(
    "helpdesk_survey_score", "Survey scores (1-5) by dimension", ["dimension"], buckets=(1, 2, 3, 4, 5),
)
NEGATIVE = Counter("helpdesk_survey_negative_total", "Negative answers by reason", ["reason"])
SENT = Counter("helpdesk_survey_sent_total", "Surveys sent", ["complaint"])
REMINDERS = Counter("helpdesk_survey_reminders_total", "Reminders sent for unanswered surveys")
EXPIRED = Counter("helpdesk_survey_expired_total", "Surveys that expired unanswered")
CANCELLED = Counter("helpdesk_survey_cancelled_total", "Surveys withdrawn because the ticket reopened", ["was_sent"])
REJECTED = Counter("helpdesk_survey_rejected_total", "Refused answers by why", ["why"])
RESPONSE_RATE = Gauge(
    "helpdesk_survey_response_rate", "Answered / sent among surveys sent in the window (exact at scrape)", ["window"],
)
SURVEYS = Gauge("helpdesk_surveys", "Surveys by status (exact at scrape)", ["status"])
STATUSES = ("scheduled", "sent", "answered", "expired", "cancelled")


def observe_answer(*, satisfied: bool, speed: int, attitude: int, overall: int, reasons: tuple[str, ...]) -> None:
    RESPONSES.labels(str(satisfied).lower()).inc()
    for dimension, score in (("speed", speed), ("attitude", attitude), ("overall", overall)):
        SCORE.labels(dimension).observe(score)
    for reason in reasons:
        NEGATIVE.labels(reason).inc()


def set_rate(window: str, sent: int, answered: int) -> None:
    RESPONSE_RATE.labels(window).set(answered / sent if sent else 0.0)


def set_statuses(counts: dict[str, int]) -> None:
    for status in STATUSES:
        SURVEYS.labels(status).set(counts.get(status, 0))

# Series exist from the start, so increase() counts the first answer too.
for _satisfied in ("true", "false"):
    RESPONSES.labels(_satisfied)
for _dimension in ("speed", "attitude", "overall"):
    SCORE.labels(_dimension)
