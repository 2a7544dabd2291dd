"""review.published reaches the after-sales manager: the shipped notification rule and its templates."""

from __future__ import annotations

from pathlib import Path

from tests.review.synthetic import TZ


def test_the_manager_is_told_in_the_rules_and_templates():
    from services.notification import domain
    from services.notification.config import load_rules
    from services.notification.templates import Templates

    root = Path(__file__).resolve().parents[2] / "services" / "notification"
    cfg = load_rules(root / "rules.toml")
    data = {"period": "2026-11", "previous_period": "2026-10", "url": "http://r/reviews/2026-11",
            "headline": {"tickets": {"value": 1200}, "fcr_rate": {"value": 0.8125}, "csat": {"value": 0.9}}}
    planned = domain.plan("review.published", data, {}, cfg)
    assert {p.recipient for p in planned} == {"staff:manager"} and all(p.template == "review_published" for p in planned)
    text = Templates(root / "templates", default_language="zh-CN", tz=TZ).render(
        "review_published", channel=planned[0].channel, language="zh-CN",
        context={"ticket_no": "", "data": data, "event": "review.published", "ticket": {}})
    assert "2026-11" in text.text and "http://r/reviews/2026-11" in text.text and "81.2%" in text.text
