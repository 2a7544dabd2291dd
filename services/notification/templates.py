"""Message templates: Jinja2 files ``<language>/<template>[.<channel>].j2``.

A template renders the message text; a top-level ``{% set subject = "…" %}`` gives the subject
(email, webhook, robot title). Lookup: the channel's own variant, then the plain template, first in
the recipient's language, then in the default language.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from services.notification.domain import DeliveryError


@dataclass(frozen=True)
class Rendered:
    language: str
    subject: str
    text: str


def _local(tz: ZoneInfo):
    def local(value: Any, fmt: str = "%Y-%m-%d %H:%M") -> str:
        if value in (None, ""):
            return ""
        dt = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        return dt.astimezone(tz).strftime(fmt)

    return local


def _minutes(value: Any) -> int:
    try:
        return max(0, round(float(value) / 60))
    except (TypeError, ValueError):
        return 0


class Templates:
    def __init__(self, directory: Path, *, default_language: str, tz: ZoneInfo) -> None:
        self.default_language = default_language
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(directory)), autoescape=False, undefined=jinja2.ChainableUndefined,
            keep_trailing_newline=False, trim_blocks=True, lstrip_blocks=True,
        )
        self.env.filters["local"] = _local(tz)
        self.env.filters["minutes"] = _minutes

    def _find(self, template: str, channel: str, language: str) -> tuple[str, jinja2.Template]:
        names = []
        for lang in dict.fromkeys((language, self.default_language)):
            names += [(lang, f"{lang}/{template}.{channel}.j2"), (lang, f"{lang}/{template}.j2")]
        for lang, name in names:
            try:
                return lang, self.env.get_template(name)
            except jinja2.TemplateNotFound:
                continue
        raise DeliveryError(f"no template {template!r} for {language}", permanent=True)

    def render(self, template: str, *, channel: str, language: str | None, context: dict[str, Any]) -> Rendered:
        lang, tpl = self._find(template, channel, language or self.default_language)
        module = tpl.make_module({**context, "language": lang})
        text = "\n".join(line.rstrip() for line in str(module).strip().splitlines())
        return Rendered(language=lang, subject=str(getattr(module, "subject", "") or ""), text=text)

    def names(self) -> list[str]:
        return self.env.list_templates(extensions=["j2"])
