"""PII masking: phones keep their first 3 and last 4 digits, emails their first letter and domain."""

from __future__ import annotations

import re
from typing import Any

_EMAIL = re.compile(r"([A-Za-z0-9._%+\-])([A-Za-z0-9._%+\-]*)@([A-Za-z0-9.\-]+\.[A-Za-z]{2,})")
# Phone-like runs: mainland mobiles (optionally +86), "+<country> <number>", and landlines with an
# area code ("010-12345678"). Plain digit runs (ticket numbers, order numbers) are left alone.
_PHONE = re.compile(
    r"(?<![0-9*+])("
    r"(?:\+?86[ \-]?)?1[3-9]\d[ \-]?\d{4}[ \-]?\d{4}"
    r"|\+\d{1,3}[ \-]?\d{2,4}[ \-]?\d{3,4}[ \-]?\d{3,4}"
    r"|0\d{2,3}-\d{7,8}"
    r")(?![0-9*])"
)


def mask_phone(phone: str | None) -> str | None:
    """``13812345678`` -> ``138****5678``; short or odd numbers keep at most their last 4 digits."""
    if phone is None:
        return None
    digits = re.sub(r"\D", "", phone)
    if len(digits) == 13 and digits.startswith("86"):
        return "+86 " + (mask_phone(digits[2:]) or "")
    if len(digits) >= 11:
        return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]
    if len(digits) > 4:
        return "*" * (len(digits) - 4) + digits[-4:]
    return "*" * len(digits)


def mask_email(email: str | None) -> str | None:
    """``li.lei@example.com`` -> ``l***@example.com``."""
    if email is None:
        return None
    local, sep, domain = email.partition("@")
    if not sep:
        return "***"
    return f"{local[:1]}***@{domain}"


def mask_text(text: str) -> str:
    """Mask every email address and phone-like digit run inside free text (logs, bodies)."""
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(3)}", text)

    def _phone(m: re.Match[str]) -> str:
        return mask_phone(m.group(1)) or ""

    return _PHONE.sub(_phone, text)


# Identifier fields are opaque keys that subscribers match on; masking a digit run inside one
# ("bench-1a13812345678b") would break the match, and they are not where contact details go.
IDENTIFIER_KEYS = frozenset({
    "ticket_no", "external_id", "order_no", "id", "survey_id", "command_id", "event_id", "url", "token",
    "assignee", "actor", "rule", "template",
})


def mask_deep(value: Any) -> Any:
    """``mask_text`` applied to every string inside a JSON-like value (event payloads), except the
    values of ``IDENTIFIER_KEYS``."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: v if k in IDENTIFIER_KEYS and not isinstance(v, dict | list) else mask_deep(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [mask_deep(v) for v in value]
    return value
