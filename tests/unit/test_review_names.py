"""The review page names every figure in both languages (the JSON keeps the contract's keys)."""

from services.review.definitions import DEFINITIONS
from services.review.names import NAMES, name

PAGE_KEYS = {k for k in DEFINITIONS if k not in {"top_categories", "trend", "change", "previous"}}


def test_every_defined_figure_has_a_name_in_both_languages():
    for lang in ("zh-CN", "en"):
        assert PAGE_KEYS - set(NAMES[lang]) == set(), lang


def test_dotted_figures_keep_their_group_and_unknown_keys_stay_as_written():
    assert name("first_response_compliance.P1", "zh-CN") == "首响达标率 P1"
    assert name("breakdowns.channel.web", "en") == "Breakdown channel · web"
    assert name("csat", "en") == "CSAT (satisfied or better)"
    assert name("something_new", "zh-CN") == "something_new"
