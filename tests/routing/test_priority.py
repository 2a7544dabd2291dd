"""The priority matrix (default rules): properties over every combination of the inputs."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.routing.config import RoutingSettings, load_rules
from services.routing.domain import PRIORITIES, prioritize
from shared.events import CATEGORIES

RULES = load_rules(RoutingSettings().rules_file)
URGENCIES = ("low", "normal", "urgent")
TIERS = ("standard", "vip")
IMPACTS = ("single", "batch")

facts = st.fixed_dictionaries({
    "category": st.sampled_from(CATEGORIES), "urgency": st.sampled_from(URGENCIES),
    "tier": st.sampled_from(TIERS), "impact": st.sampled_from(IMPACTS), "complaint": st.booleans(),
})


def rank(f: dict) -> int:
    """Smaller is more important (P1 = 0)."""
    return PRIORITIES.index(prioritize(RULES, **f)[0])


def raised(f: dict, key: str, order: tuple) -> dict | None:
    i = order.index(f[key])
    return {**f, key: order[i + 1]} if i + 1 < len(order) else None


@given(facts)
def test_always_a_contract_priority_and_a_named_rule(f):
    priority, rule = prioritize(RULES, **f)
    assert priority in PRIORITIES and rule


@given(facts)
def test_business_stopped_is_p1(f):
    assert prioritize(RULES, **{**f, "urgency": "urgent"})[0] == "P1"


@given(facts)
def test_a_vips_fault_is_p1(f):
    priority, rule = prioritize(RULES, **{**f, "tier": "vip", "category": "fault"})
    assert priority == "P1"
    assert rule == ("business-stopped" if f["urgency"] == "urgent" else "vip-fault")


@given(facts)
def test_explicit_complaint_or_batch_impact_is_at_least_p2(f):
    assert rank({**f, "complaint": True}) <= 1
    assert rank({**f, "impact": "batch"}) <= 1


@given(facts)
def test_more_urgency_vip_batch_or_complaint_never_lowers_priority(f):
    for key, order in (("urgency", URGENCIES), ("tier", TIERS), ("impact", IMPACTS), ("complaint", (False, True))):
        up = raised(f, key, order)
        if up is not None:
            assert rank(up) <= rank(f), (key, f)


@given(st.sampled_from(("normal", "low")))
def test_plain_consultation_p3_suggestion_p4(urgency):
    plain = {"urgency": urgency, "tier": "standard", "impact": "single", "complaint": False}
    assert prioritize(RULES, category="suggestion", **plain)[0] == "P4"
    expected = "P3" if urgency == "normal" else "P4"
    assert prioritize(RULES, category="consultation", **plain)[0] == expected


def test_matrix_examples():
    base = {"urgency": "normal", "tier": "standard", "impact": "single", "complaint": False}
    assert prioritize(RULES, category="fault", **base) == ("P3", "base:fault")
    assert prioritize(RULES, category="refund", **{**base, "impact": "batch"}) == ("P2", "batch-impact")
    assert prioritize(RULES, category="suggestion", **{**base, "tier": "vip"}) == ("P3", "vip-first")
    assert prioritize(RULES, category="logistics", **{**base, "urgency": "low"}) == ("P4", "low-urgency")
    assert prioritize(RULES, category="attitude", **{**base, "urgency": "low", "complaint": True})[0] == "P2"
