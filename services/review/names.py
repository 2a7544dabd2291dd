"""Human names of the review's figures for the page (the JSON, CSV and XLSX keep the contract's keys).

A dotted figure (``first_response_compliance.P1``, ``categories.fault``, ``breakdowns.channel.web.tickets``)
is named by its first known part and the rest as written."""

from __future__ import annotations

NAMES: dict[str, dict[str, str]] = {
    "zh-CN": {
        "tickets": "受理工单数", "first_response_avg_s": "平均首次响应时长（秒）",
        "first_response_median_s": "首次响应时长中位数（秒）", "first_response_p90_s": "首次响应时长P90（秒）",
        "resolution_avg_s": "平均解决时长（秒）", "resolution_median_s": "解决时长中位数（秒）",
        "resolution_p90_s": "解决时长P90（秒）",
        "first_response_business_avg_s": "平均首次响应时长（工作时间，秒）",
        "first_response_business_median_s": "首次响应时长中位数（工作时间，秒）",
        "first_response_business_p90_s": "首次响应时长P90（工作时间，秒）",
        "resolution_business_avg_s": "平均解决时长（工作时间，秒）",
        "resolution_business_median_s": "解决时长中位数（工作时间，秒）",
        "resolution_business_p90_s": "解决时长P90（工作时间，秒）",
        "fcr_rate": "一次解决率", "csat": "满意度（满意及以上占比）", "survey_response_rate": "回访应答率",
        "reopen_rate": "重开率", "repeat_complaint_rate": "重复投诉率",
        "first_response_compliance": "首响达标率", "first_response_compliance_overall": "首响达标率（总体）",
        "resolution_compliance": "解决时效达标率", "categories": "问题分类", "escalation_rate": "升级率",
        "backlog_end": "期末积压", "resolved": "已解决工单数", "complaints": "投诉数",
        "surveys_sent": "发出回访", "surveys_answered": "回访应答", "breakdowns": "分组",
        "complaint_analysis": "投诉分析", "next_update_breaches": "进展更新超时次数",
        "next_update_compliance": "进展更新按时率",
    },
    "en": {
        "tickets": "Tickets received", "first_response_avg_s": "First response, mean (s)",
        "first_response_median_s": "First response, median (s)", "first_response_p90_s": "First response, p90 (s)",
        "resolution_avg_s": "Resolution, mean (s)", "resolution_median_s": "Resolution, median (s)",
        "resolution_p90_s": "Resolution, p90 (s)",
        "first_response_business_avg_s": "First response, mean (business s)",
        "first_response_business_median_s": "First response, median (business s)",
        "first_response_business_p90_s": "First response, p90 (business s)",
        "resolution_business_avg_s": "Resolution, mean (business s)",
        "resolution_business_median_s": "Resolution, median (business s)",
        "resolution_business_p90_s": "Resolution, p90 (business s)",
        "fcr_rate": "First-contact resolution", "csat": "CSAT (satisfied or better)",
        "survey_response_rate": "Survey response rate", "reopen_rate": "Reopen rate",
        "repeat_complaint_rate": "Repeat complaint rate", "first_response_compliance": "First-response compliance",
        "first_response_compliance_overall": "First-response compliance, overall",
        "resolution_compliance": "Resolution compliance", "categories": "Category", "escalation_rate": "Escalation rate",
        "backlog_end": "Backlog at period end", "resolved": "Tickets resolved", "complaints": "Complaints",
        "surveys_sent": "Surveys sent", "surveys_answered": "Surveys answered", "breakdowns": "Breakdown",
        "complaint_analysis": "Complaint analysis", "next_update_breaches": "Missed progress updates",
        "next_update_compliance": "Progress updates on time",
    },
}


def name(metric: str, lang: str) -> str:
    """``first_response_compliance.P1`` → ``首响达标率 P1``; an unknown key is shown as it is."""
    head, _, rest = metric.partition(".")
    known = NAMES.get(lang, {}).get(head)
    if known is None:
        return metric
    return f"{known} {rest.replace('.', ' · ')}" if rest else known
