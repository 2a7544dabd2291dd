"""The progress page's HTML (Jinja2, server-rendered, no JavaScript): Chinese by default, English by
the ticket's language or ``?lang=en``; big tap targets for a phone."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.intake.progress import PageView
from services.intake.progress_domain import LANGUAGES, MAX_TEXT

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates" / "progress"),
    autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True,
)

TEXT: dict[str, dict[str, Any]] = {
    "zh-CN": {
        "html_lang": "zh-CN", "title": "工单进度", "ticket": "工单号", "status": "当前状态", "step": "当前环节",
        "step_due": "本环节承诺时间", "resolution_due": "预计解决时间", "eta": "我们的承诺", "none": "—",
        "statuses": {"new": "已受理", "assigned": "已分派专人", "in_progress": "处理中", "waiting": "等待您补充信息",
                     "resolved": "已解决", "closed": "已结案"},
        "steps": {"received": "登记受理", "assigned": "专人接单", "handling": "处理中", "waiting": "等待您的回复",
                  "appointment": "预约上门", "resolved": "等待您确认结果", "closed": "已结案"},
        "timeline": "处理记录", "empty": "暂无记录",
        "kinds": {"received": "已收到您的问题", "reply": "客服回复", "progress": "处理进展",
                  "waiting": "需要您补充信息",
                  "you": "您补充的信息", "callback": "您申请了回电", "appointment": "已预约", "resolved": "处理结果",
                  "reopened": "工单已重新处理", "confirmed": "您确认问题已解决", "closed": "工单已结案"},
        "outcomes": {"resolved": "已解决", "partial": "部分解决", "unresolved": "未解决"},
        "eta_line": "预计完成时间", "appointment_line": "预约时间",
        "confirm": "问题是否解决？", "yes": "已解决", "no": "未解决",
        "confirm_words": "如未解决，请告诉我们哪里还有问题（选填）",
        "confirm_submit": "提交确认",
        "add": "补充信息", "add_label": "补充说明（例如截图说明、重启结果、方便联系的时间）",
        "add_submit": "提交补充信息",
        "add_hint": f"最多 {MAX_TEXT} 字。请勿填写银行卡号、密码等敏感信息。",
        "callback": "需要我们回电？", "callback_hint": "主管会尽快给您回电。", "callback_submit": "申请回电",
        "done": {"reply": "已收到您补充的信息，谢谢！", "callback": "已收到您的回电申请，我们会尽快联系您。",
                 "confirmed": "感谢您的确认！", "reopened": "已重新为您处理，我们会尽快跟进。"},
        "errors": {"text": "请填写内容（最多 {max} 字）", "solved": "请选择“已解决”或“未解决”"},
        "error_summary": "提交未成功，请检查标出的项目。",
        "closed_pages": {
            "unknown": ("链接无效", "找不到这个工单进度页面，请检查链接是否完整。"),
            "expired": ("此链接已过期", "工单已结案较久，进度页面已关闭。如仍有问题，请联系客服。"),
            "conflict": ("无法完成此操作", "{problem}"),
            "too_many": ("操作过于频繁", "{problem}"),
        },
        "back": "返回工单进度",
        "other_language": ("English", "en"),
    },
    "en": {
        "html_lang": "en", "title": "Ticket progress", "ticket": "Ticket number", "status": "Status",
        "step": "Current step", "step_due": "Promised for this step", "resolution_due": "Expected resolution",
        "eta": "Our promise", "none": "—",
        "statuses": {"new": "Received", "assigned": "Assigned", "in_progress": "In progress",
                     "waiting": "Waiting for your information", "resolved": "Resolved", "closed": "Closed"},
        "steps": {"received": "Registration", "assigned": "Taken by a specialist", "handling": "Being handled",
                  "waiting": "Waiting for your reply", "appointment": "Appointment booked",
                  "resolved": "Waiting for your confirmation", "closed": "Closed"},
        "timeline": "History", "empty": "Nothing yet",
        "kinds": {"received": "We received your request", "reply": "Reply from our team", "progress": "Progress",
                  "waiting": "We need more information", "you": "Your information",
                  "callback": "You asked for a call back",
                  "appointment": "Appointment", "resolved": "Outcome", "reopened": "Reopened",
                  "confirmed": "You confirmed it is solved", "closed": "Closed"},
        "outcomes": {"resolved": "Resolved", "partial": "Partly resolved", "unresolved": "Not resolved"},
        "eta_line": "Expected by", "appointment_line": "Appointment at",
        "confirm": "Is your problem solved?", "yes": "Solved", "no": "Not solved",
        "confirm_words": "If not, please tell us what is still wrong (optional)", "confirm_submit": "Send",
        "add": "Add information", "add_label": "Details (what you tried, a good time to call…)",
        "add_submit": "Send information",
        "add_hint": f"Up to {MAX_TEXT} characters. Never write card numbers or passwords here.",
        "callback": "Want us to call you?", "callback_hint": "A supervisor will call you back soon.",
        "callback_submit": "Request a call back",
        "done": {"reply": "Thank you, we have your information.", "callback": "We will call you back soon.",
                 "confirmed": "Thank you for confirming!",
                 "reopened": "We have reopened your ticket and will follow up."},
        "errors": {"text": "Please write something (at most {max} characters)",
                   "solved": "Please choose Solved or Not solved"},
        "error_summary": "Not sent: please check the marked fields.",
        "closed_pages": {
            "unknown": ("Link not valid", "We cannot find this ticket page. Please check the link."),
            "expired": ("This link has expired",
                        "The ticket was closed a while ago. If you still need help, contact us."),
            "conflict": ("That cannot be done now", "{problem}"),
            "too_many": ("Too many requests", "{problem}"),
        },
        "back": "Back to the ticket",
        "other_language": ("中文", "zh-CN"),
    },
}


def language(ticket_language: str | None, override: str | None) -> str:
    if override in LANGUAGES:
        return override  # type: ignore[return-value]
    return ticket_language if ticket_language in LANGUAGES else "zh-CN"


def _local(tz: ZoneInfo):
    def local(value: datetime | None) -> str:
        return value.astimezone(tz).strftime("%Y-%m-%d %H:%M") if value else ""
    return local


def render_page(view: PageView, *, token: str, lang: str, tz: ZoneInfo, done: str | None = None,
                errors: Mapping[str, str] | None = None, values: Mapping[str, Any] | None = None,
                from_action: bool = False) -> str:
    """The page at ``/t/{token}``, or re-shown as the answer to one of its forms (``/t/{token}/<action>``:
    ``from_action``), with links relative to where the browser is (an ingress may add a path prefix)."""
    t = TEXT[lang]
    actions, page = ("", f"../{token}") if from_action else (f"{token}/", "")
    return TEMPLATES.get_template("page.html").render(
        t=t, lang=lang, v=view, actions=actions, page=page, local=_local(tz), done=t["done"].get(done or ""),
        errors=errors or {},
        values=values or {}, max_text=MAX_TEXT,
    )


def error_message(field: str, lang: str) -> str:
    return TEXT[lang]["errors"].get(field, TEXT[lang]["errors"]["text"]).format(max=MAX_TEXT)


def render_closed(*, state: str, lang: str, problem: str = "", back: str | None = None) -> str:
    t = TEXT[lang]
    heading, body = t["closed_pages"][state]
    return TEMPLATES.get_template("closed.html").render(t=t, lang=lang, state=state, heading=heading,
                                                        body=body.format(problem=problem), back=back)
