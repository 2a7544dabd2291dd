"""What erasure (``customer.erase``) and retention leave of personal data: pure helpers the services
share. A customer's known raw values (name, phone, email, channel id) are replaced by their masked
forms wherever they occur in stored text or JSON; every other phone, email, ID or card number is
masked as in events. Facts (numbers, times, categories, scores) are never touched."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from shared.masking import IDENTIFIER_KEYS, mask_email, mask_identifier, mask_name, mask_phone, mask_text

ERASED = "[erased]"


def known_values(*, name: str | None = None, phone: str | None = None, email: str | None = None,
                 customer_id: str | None = None) -> dict[str, str]:
    """Raw value -> what replaces it (values under 2 characters are too short to search for)."""
    pairs = {name: mask_name(name), phone: mask_phone(phone), email: mask_email(email), customer_id: ERASED}
    return {raw.strip(): masked or ERASED for raw, masked in pairs.items() if raw and len(raw.strip()) >= 2}


def merge(knowns: Iterable[Mapping[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k in knowns:
        out.update(k)
    return out


def _pattern(known: Mapping[str, str]) -> re.Pattern[str] | None:
    if not known:
        return None
    # longest first, so "李雷雷" is replaced before "李雷"; one alternation = one linear pass
    alternatives = sorted(known, key=len, reverse=True)
    return re.compile("|".join(re.escape(a) for a in alternatives), re.IGNORECASE)


def scrub_text(text: str | None, known: Mapping[str, str]) -> str | None:
    """``text`` with every known raw value replaced and every other contact masked."""
    if not text:
        return text
    pattern = _pattern(known)
    if pattern is not None:
        lowered = {k.lower(): v for k, v in known.items()}
        text = pattern.sub(lambda m: lowered.get(m.group(0).lower(), ERASED), text)
    return mask_text(text)


def scrub(value: Any, known: Mapping[str, str]) -> Any:
    """``scrub_text`` on every string of a JSON-like value (keys kept, numbers and booleans untouched);
    identifiers (``ticket_no``, ``survey_id`` …) keep their value unless it is a known one or a contact."""
    if isinstance(value, str):
        return scrub_text(value, known)
    if isinstance(value, dict):
        return {k: _identifier(v, known) if k in IDENTIFIER_KEYS and isinstance(v, str) else scrub(v, known)
                for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, known) for v in value]
    return value


def _identifier(value: str, known: Mapping[str, str]) -> str:
    lowered = {k.lower(): v for k, v in known.items()}
    return lowered.get(value.strip().lower()) or mask_identifier(value) or value


def names_in(value: Any, *, erase: bool = False) -> dict[str, str]:
    """Known values found in event data a service stored (``customer.name`` / ``customer.id`` of a
    ``ticket.created``), for a service that never kept the raw contact itself; ``erase``: the name
    becomes ``[erased]`` rather than its masked form."""
    found: dict[str, str] = {}
    if isinstance(value, dict):
        customer = value.get("customer")
        if isinstance(customer, dict) and isinstance(customer.get("name"), str):
            name, cid = customer.get("name"), customer.get("id")
            found.update(known_values(name=name, customer_id=cid if isinstance(cid, str) else None))
            if erase and len(name.strip()) >= 2:
                found[name.strip()] = ERASED
        for v in value.values():
            found.update(names_in(v, erase=erase))
    elif isinstance(value, list):
        for v in value:
            found.update(names_in(v, erase=erase))
    return found


def without_customer_words(value: Any) -> Any:
    """Event data without what the customer wrote: ``comment`` emptied, and the comment a
    ``survey.negative`` reason quotes after its colon dropped (used when erasing)."""
    if isinstance(value, list):
        return [without_customer_words(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: without_customer_words(v) for k, v in value.items()}
    if out.get("comment"):
        out["comment"] = None
        if isinstance(out.get("reason"), str):
            out["reason"] = out["reason"].split(":", 1)[0]
    return out
