"""The survey page: server-rendered HTML (Jinja2), Chinese by default, English by the survey's
language. No JavaScript: radio buttons styled as large tap targets, a plain form POST."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import ValidationError

from services.survey.domain import LANGUAGES, language

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)

TEXT: dict[str, dict[str, Any]] = {
    "zh-CN": {
        "html_lang": "zh-CN", "title": "服务满意度回访",
        "intro": "您好！您的工单 {ticket_no} 已处理完毕。请花一分钟告诉我们您的感受。",
        "resolved": "您的问题解决了吗？", "yes": "已解决", "no": "未解决",
        "speed": "处理速度", "speed_ends": ("很慢", "很快"),
        "attitude": "服务态度", "attitude_ends": ("很差", "很好"),
        "overall": "总体满意度", "overall_labels": ("非常不满意", "不满意", "一般", "满意", "非常满意"),
        "comment": "意见或建议（选填）", "comment_hint": "您的建议会帮助我们改进服务",
        "submit": "提交评价", "error_summary": "还有问题需要填写，请检查标出的项目。",
        "err_required": "请选择一项", "err_score": "请选择 1 到 5 分", "err_resolved": "请选择“已解决”或“未解决”",
        "err_comment": "请控制在 2000 字以内",
        "thanks_title": "感谢您的反馈！", "thanks_body": "我们已收到您的评价，它将帮助我们做得更好。",
        "thanks_negative": "很抱歉这次没能让您满意。售后经理将在 1 小时内与您联系，跟进处理。",
        "answered_title": "此问卷已提交", "answered_body": "每份问卷只能提交一次。感谢您的反馈！",
        "expired_title": "此链接已过期", "expired_body": "这份问卷的有效期已过。如仍有问题，请联系客服。",
        "cancelled_title": "此问卷已失效",
        "cancelled_body": "您的工单已重新打开处理。处理完毕后，我们会再次邀请您评价。",
        "unknown_title": "链接无效", "unknown_body": "找不到这份问卷，请检查链接是否完整。",
        "other_language": ("English", "en"),
    },
    "en": {
        "html_lang": "en", "title": "How did we do?",
        "intro": "Hello! Your ticket {ticket_no} has been handled. Please take a minute to tell us how it went.",
        "resolved": "Was your problem solved?", "yes": "Solved", "no": "Not solved",
        "speed": "Speed", "speed_ends": ("Very slow", "Very fast"),
        "attitude": "Attitude of our staff", "attitude_ends": ("Very poor", "Excellent"),
        "overall": "Overall satisfaction",
        "overall_labels": ("Very dissatisfied", "Dissatisfied", "Neutral", "Satisfied", "Very satisfied"),
        "comment": "Comments or suggestions (optional)", "comment_hint": "Your suggestions help us improve",
        "submit": "Send", "error_summary": "Some answers are missing; please check the marked questions.",
        "err_required": "Please choose one", "err_score": "Please choose 1 to 5",
        "err_resolved": "Please choose Solved or Not solved", "err_comment": "Please keep it under 2000 characters",
        "thanks_title": "Thank you for your feedback!",
        "thanks_body": "We have received your answers; they help us do better.",
        "thanks_negative": "We are sorry we did not meet your expectations. "
                           "Our after-sales manager will call you within one hour.",
        "answered_title": "This survey has already been answered",
        "answered_body": "Each survey can be answered once. Thank you for your feedback!",
        "expired_title": "This link has expired",
        "expired_body": "This survey is no longer open. If you still need help, please contact us.",
        "cancelled_title": "This survey is no longer needed",
        "cancelled_body": "Your ticket was reopened. When it is resolved we will ask you again.",
        "unknown_title": "Link not valid", "unknown_body": "We cannot find this survey. Please check the link.",
        "other_language": ("中文", "zh-CN"),
    },
}
QUESTIONS = ("resolved", "speed", "attitude", "overall")


def page_language(survey_language: str | None, override: str | None) -> str:
    """The survey's language, unless the link asks for another (``?lang=en``)."""
    return override if override in LANGUAGES else language(survey_language)


def field_errors(exc: ValidationError, lang: str) -> dict[str, str]:
    """Pydantic's errors as one localised message per question."""
    t = TEXT[lang]
    errors: dict[str, str] = {}
    for err in exc.errors(include_url=False):
        field = str(err["loc"][0]) if err["loc"] else "body"
        if err["type"] == "missing":
            message = t["err_required"]
        elif field == "resolved":
            message = t["err_resolved"]
        elif field == "comment":
            message = t["err_comment"]
        else:
            message = t["err_score"]
        errors.setdefault(field, message)
    return errors


def render_form(*, lang: str, ticket_no: str, values: Mapping[str, Any] | None = None,
                errors: Mapping[str, str] | None = None) -> str:
    return TEMPLATES.get_template("form.html").render(
        t=TEXT[lang], lang=lang, ticket_no=ticket_no, values=values or {}, errors=errors or {},
    )


def render_closed(*, lang: str, state: str) -> str:
    """The page for a link that takes no answer: ``answered``, ``expired``, ``cancelled``, ``unknown``."""
    t = TEXT[lang]
    return TEMPLATES.get_template("closed.html").render(
        t=t, lang=lang, state=state, heading=t[f"{state}_title"], body=t[f"{state}_body"],
    )


def render_thanks(*, lang: str, negative: bool) -> str:
    return TEMPLATES.get_template("thanks.html").render(t=TEXT[lang], lang=lang, negative=negative)
