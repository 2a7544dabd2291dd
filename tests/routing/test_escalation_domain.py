"""Whom an escalation reaches: the configured chain, with fall-through when a role has nobody."""

from __future__ import annotations

from services.routing.config import RoutingSettings, load_rules
from services.routing.domain import Target, escalation_target, requested_target, target_for_level

RULES = load_rules(RoutingSettings().rules_file)
NO_LEADS = RULES.model_copy(update={"departments": {
    **RULES.departments,
    "technical": RULES.departments["technical"].model_copy(update={"lead": None, "supervisor": None}),
}})


def test_triggers_follow_the_chain():
    tech = {"department": "technical", "agent_lead": None}
    assert escalation_target(RULES, "sla_warning", occurrence=1, **tech) == Target(1, "lead", "tech-lead-zhao")
    assert escalation_target(RULES, "sla_warning", occurrence=1, department="technical",
                             agent_lead="gao") == Target(1, "lead", "gao")
    assert escalation_target(RULES, "sla_breached", occurrence=1, **tech) == Target(
        2, "supervisor", "tech-supervisor-qian")
    for n in (2, 3, 7):  # the last role repeats
        assert escalation_target(RULES, "sla_breached", occurrence=n, **tech).to == "after-sales-manager"
    assert escalation_target(RULES, "survey_negative", occurrence=1, **tech).level == 3
    assert escalation_target(RULES, "unassignable", occurrence=1, department=None,
                             agent_lead=None) == Target(3, "manager", "after-sales-manager")


def test_a_role_with_nobody_passes_it_up():
    assert target_for_level(NO_LEADS, 1, department="technical", agent_lead=None) == Target(
        3, "manager", "after-sales-manager")
    assert target_for_level(RULES, 1, department=None, agent_lead=None).role == "manager"


def test_requests_climb_one_level_and_stop_at_the_top():
    where = {"department": "finance", "agent_lead": None}
    assert requested_target(RULES, current_level=0, to=None, **where) == Target(1, "lead", "finance-lead-sun")
    assert requested_target(RULES, current_level=1, to=None, **where).role == "supervisor"
    assert requested_target(RULES, current_level=3, to=None, **where).role == "manager"
    assert requested_target(RULES, current_level=0, to="expert-he", **where) == Target(1, "lead", "expert-he")
