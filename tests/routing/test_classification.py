"""Classification by the default rules: a table of real Chinese and English ticket texts."""

from __future__ import annotations

import pytest

from services.routing.config import RoutingSettings, load_rules
from services.routing.domain import Facts, classify, decide
from shared.events import CATEGORIES

RULES = load_rules(RoutingSettings().rules_file)

TABLE = [
    # (subject, description, category, rule)
    ("设备无法启动", "客户报告设备宕机，生产停止", "fault", "fault-down"),
    ("产线停机", "PLC 故障导致整条产线停产", "fault", "fault-down"),
    ("Production down", "Our server is down since 9am, nobody can work", "fault", "fault-down"),
    ("Device won't start", "The unit will not start after the firmware update", "fault", "fault-down"),
    ("打印机报错", "打印时提示错误代码 E05", "fault", "fault"),
    ("App 闪退", "打开就闪退，重装也没用", "fault", "fault"),
    ("Login error", "I get an error 500 when I sign in", "fault", "fault"),
    ("The app keeps crashing", None, "fault", "fault"),
    ("货物破损", "收到的显示器屏幕有裂痕，外包装破损", "quality", "quality"),
    ("Item arrived damaged", "The courier threw it, the parcel arrived damaged", "logistics", "transit-damage"),
    ("外观有划痕", "新买的冰箱门上有划痕和掉漆", "quality", "quality"),
    ("Damaged item", "The box arrived with a dented corner and a broken hinge", "quality", "quality"),
    ("产品使用疑问", "请问这个型号怎么设置定时开关机？", "consultation", "consultation"),
    ("How to pair the remote?", "How do I pair the remote with the TV?", "consultation", "consultation"),
    ("客服态度恶劣", "电话里客服很不耐烦，还挂了我电话", "attitude", "attitude"),
    ("Rude agent", "The agent on the phone was rude and hung up on me", "attitude", "attitude"),
    ("快递三天还没到", "物流信息一直没有更新", "logistics", "logistics"),
    ("Where is my parcel?", "Tracking shows no update for a week, not delivered yet", "logistics", "logistics"),
    ("申请退货", "尺码不合适，想退货", "return", "return"),
    ("Exchange request", "I would like to exchange it for the blue one", "return", "return"),
    ("申请退款", "订单重复扣款，请尽快退款", "refund", "refund"),
    ("Refund please", "I was charged twice and want my money back", "refund", "refund"),
    ("我要投诉", "等了一个星期都没人处理，非常不满意", "complaint", "complaint"),
    ("Formal complaint", "This is unacceptable, I want to complain to a manager", "complaint", "complaint"),
    ("功能建议", "建议增加夜间模式", "suggestion", "suggestion"),
    ("Feature request", "It would be nice to export reports as CSV", "suggestion", "suggestion"),
    ("你好", "麻烦回个电话", "other", "default"),
    ("Hello", "Call me back please", "other", "default"),
]


@pytest.mark.parametrize(("subject", "description", "category", "rule"), TABLE)
def test_real_texts(subject, description, category, rule):
    c = classify(RULES, Facts(subject=subject, description=description))
    assert (c.category, c.rule) == (category, rule)


def test_every_category_is_reachable_by_the_default_rules():
    assert {row[2] for row in TABLE} == set(CATEGORIES)
    assert {r.category for r in RULES.rules} | {"other"} == set(CATEGORIES)


def test_english_keywords_match_at_word_starts_only():
    assert classify(RULES, Facts(subject="Refunded yet?")).category == "refund"
    assert classify(RULES, Facts(subject="need to debug my script")).category == "other"  # not "bug"


def test_kind_beats_text_and_complaint_type_beats_text():
    assert classify(RULES, Facts(subject="设备故障", kind="refund")).category == "refund"
    assert classify(RULES, Facts(subject="设备故障", kind="退款")).category == "refund"
    c = classify(RULES, Facts(subject="快递员", complaint_type="attitude"))
    assert (c.category, c.complaint) == ("attitude", True)
    assert classify(RULES, Facts(subject="Whatever", kind="unknown-kind")).category == "other"


def test_business_stopped_words_raise_urgency():
    assert classify(RULES, Facts(subject="系统宕机", urgency="low")).urgency == "urgent"
    assert classify(RULES, Facts(subject="系统报错", urgency="low")).urgency == "low"


def test_generic_words_do_not_win_over_specific_ones():
    assert classify(RULES, Facts(subject="请问如何退款")).category == "refund"
    assert classify(RULES, Facts(subject="建议你们改进物流", description="快递太慢")).category == "logistics"


def test_a_complaint_word_makes_it_an_explicit_complaint():
    c = classify(RULES, Facts(subject="快递太慢", description="我要投诉"))
    assert (c.category, c.complaint) == ("logistics", True)
    assert decide(RULES, Facts(subject="快递太慢", description="我要投诉")).priority == "P2"


def test_cross_department_only_when_the_text_decides():
    d = decide(RULES, Facts(subject="设备故障", description="修不好就退款"))
    assert d.cross_department == ("technical", "finance") and d.unassignable
    assert not decide(RULES, Facts(subject="设备故障 退款", kind="refund")).cross_department
    assert not decide(RULES, Facts(subject="请问如何退款")).cross_department  # consultation is weak
    # an exclusive rule settles overlaps: damaged in transit is the courier's claim (logistics)
    d = decide(RULES, Facts(subject="快递破损", description="包裹送到时外包装破损"))
    assert (d.category, d.rule, d.cross_department) == ("logistics", "transit-damage", ())


def test_unmatched_is_other_never_an_error():
    for text in ("", "   ", "🙂🙂", "x" * 5000, None):
        assert classify(RULES, Facts(subject=text, description=None)).category == "other"


def test_a_category_no_department_handles_is_unassignable():
    desk = RULES.departments["service_desk"]
    rules = RULES.model_copy(update={"departments": {
        **RULES.departments, "service_desk": desk.model_copy(update={"categories": ("consultation", "suggestion")})}})
    d = decide(rules, Facts(subject="你好"))
    assert (d.category, d.department, d.unassignable) == ("other", None, True)
    assert not decide(RULES, Facts(subject="你好")).unassignable
