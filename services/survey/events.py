"""Survey's outgoing events: the contract's ``survey.completed`` / ``survey.negative`` with the extra
fields the survey knows (the contract welcomes more fields; subscribers ignore what they do not read)."""

from __future__ import annotations

from typing import Literal

from shared.events import SurveyCompleted, SurveyNegative


class SurveyCompletedScored(SurveyCompleted):
    """``survey.completed`` as the survey service publishes it: the scores plus what it concluded."""

    satisfied: bool
    negative: bool
    repeat_complainant: bool = False
    language: str | None = None


class SurveyNegativeFlagged(SurveyNegative):
    """``survey.negative``: the customer said "not resolved" or rated overall <= 2. Routing escalates
    it to the after-sales manager for a call-back within ``callback_within_s``."""

    reasons: list[Literal["unresolved", "dissatisfied"]]
    resolved: bool
    overall: int
    comment: str | None = None
    repeat_complainant: bool = False
    callback_within_s: int = 3600
