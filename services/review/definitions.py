"""Every figure's definition, written once: returned with the figures (``definitions``), listed in the
README (``python -m services.review definitions --markdown``) and shown on the page.

Common ground for all: a ticket belongs to the period in which it was **received** (``received_at`` of
``ticket.created``, in ``HELPDESK_TZ`` boundaries); "first" means the event with the lowest per-ticket
``seq`` of its publisher; durations are calendar seconds unless "business" is said; a figure with
nothing to measure is null.
"""

from __future__ import annotations

DEFINITIONS: dict[str, str] = {
    "tickets": "Tickets received in the period (ticket.created received_at).",
    "first_response_avg_s": "Mean of received_at -> `at` of the first ticket.responded, calendar seconds, over the "
                            "period's tickets that have one.",
    "first_response_median_s": "Median of the same (mean of the two middle values for an even count).",
    "first_response_p90_s": "90th percentile of the same (nearest rank: the smallest value with at least 90 % of "
                            "values at or below it).",
    "resolution_avg_s": "Mean of received_at -> `at` of the first ticket.resolved (any outcome), calendar seconds, "
                        "over the period's resolved tickets.",
    "resolution_median_s": "Median of the same.",
    "resolution_p90_s": "90th percentile (nearest rank) of the same.",
    "first_response_business_avg_s": "Mean of received_at -> first ticket.responded counted on the business calendar "
                                     "of the ticket's SLA policy (the calendar named by its sla.started; a ticket "
                                     "whose calendar is unknown is left out). Waiting time is not subtracted.",
    "first_response_business_median_s": "Median of the same.",
    "first_response_business_p90_s": "90th percentile (nearest rank) of the same.",
    "resolution_business_avg_s": "Mean of received_at -> first ticket.resolved on the ticket's SLA calendar.",
    "resolution_business_median_s": "Median of the same.",
    "resolution_business_p90_s": "90th percentile (nearest rank) of the same.",
    "fcr_rate": "Share of the period's resolved tickets whose first ticket.resolved has first_contact true "
                "(resolved, at most one response before, by the first assignee, never escalated or reopened).",
    "csat": "Share of answered surveys (survey.completed) of the period's tickets with overall >= 4.",
    "survey_response_rate": "Surveys answered / surveys sent, over the period's tickets; a survey counts as sent "
                            "once survey.sent (or its answer) is seen, unless it was withdrawn unanswered "
                            "(survey.cancelled after a reopen).",
    "reopen_rate": "Share of the period's resolved tickets with at least one ticket.reopened.",
    "repeat_complaint_rate": "Share of the period's complaints (category complaint or attitude per the latest "
                             "ticket.routed, or a complaint block in ticket.created) whose customer_key had "
                             "another complaint received in the 30 days (720 h) strictly before it.",
    "first_response_compliance": "Per priority (latest ticket.routed): share of tickets with a first-response clock "
                                 "outcome that met it (sla.met) rather than breached (any sla.breached).",
    "first_response_compliance_overall": "The same over all priorities.",
    "resolution_compliance": "Per priority: share of tickets with a resolution clock outcome that met it and never "
                             "breached (a reopened ticket breached later counts as breached).",
    "categories": "Tickets per category (latest ticket.routed; 'unknown' when not routed yet).",
    "escalation_rate": "Share of the period's tickets with at least one ticket.escalated.",
    "backlog_end": "Tickets open at the period's end (or now, for a period still running): received before it, not "
                   "closed before it, and not resolved at it (no ticket.resolved before it, or a ticket.reopened "
                   "after the last one). Counts tickets from any earlier period too.",
    "resolved": "The period's tickets with a ticket.resolved.",
    "complaints": "The period's complaints (see repeat_complaint_rate).",
    "surveys_sent": "Surveys sent for the period's tickets (see survey_response_rate).",
    "surveys_answered": "Surveys answered for the period's tickets.",
    "next_update_breaches": "Regular-update (next_update) clock cycles breached for the period's tickets: each "
                            "distinct sla.breached with metric next_update counts once (the clock restarts with "
                            "every customer-visible reply or progress note, so a ticket may have many).",
    "next_update_compliance": "Share of the period's tickets' next_update cycles that ended met: sla.met / "
                              "(sla.met + sla.breached) with metric next_update, each distinct event once; null "
                              "when there are none.",
    "breakdowns": "Per channel, category, priority, department (latest ticket.routed) and agent (the actor of the "
                  "first ticket.resolved, else the latest assignee): tickets, mean first response, mean resolution, "
                  "FCR rate, each defined as above within the group.",
    "complaint_analysis": "The period's complaints by complaint type (ticket.created complaint.type), "
                          "responsibility (ticket.determined, else ticket.diagnosed) and department "
                          "(ticket.determined, else the routed department).",
    "top_categories": "The five largest categories with their share of tickets, each with its sub-items "
                      "(ticket.diagnosed sub_item, else that of the latest ticket.resolved carrying one) and their "
                      "share within the category.",
    "trend": "The 12 calendar months ending with the period's last month, each with the headline figures; a "
             "published month's as published (its snapshot), the others computed now.",
    "previous": "The previous period's value: as published when that period has a snapshot (the figures its "
                "review showed, exact; previous_source = snapshot), else computed now (previous_source = live).",
    "change": "(value - previous) / previous from unrounded values, 4 decimals; null when previous is 0 or null. "
              "Durations are rounded to 0.001 s, rates to 4 decimals (half to even).",
}


def markdown() -> str:
    """The definitions as a Markdown table (for the README)."""
    rows = ["| figure | definition |", "|---|---|"]
    rows += [f"| `{k}` | {v} |" for k, v in DEFINITIONS.items()]
    return "\n".join(rows)
