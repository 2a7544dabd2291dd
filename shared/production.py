"""``HELPDESK_ENV=production`` refuses to start with a known default or missing secret, naming each.

Refused: the broker's ``guest`` login and any default password (``guest``, ``dev-secret``,
``change-me…``, …), empty database role passwords, the admin ``DATABASE_URL`` at run time (a
service gets only its ``HELPDESK_DB_URL``; bootstrap is ``python -m shared.bootstrap``), API keys
shorter than 32 bytes or known, ``guest`` trusted as a broker user, and known default ``*_secret``
settings.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

from shared.auth import parse_api_keys
from shared.trust import users_for

KNOWN = frozenset({"", "guest", "dev-secret", "test-secret", "bench-secret", "change-me", "changeme", "change-me-too",
                   "helpdesk", "helpdesk-services", "password", "secret", "admin", "postgres",
                   "helpdesk-dev-customer-key"})  # the shipped HELPDESK_CUSTOMER_KEY_SECRET
MIN_KEY_BYTES = 32


class InsecureConfiguration(ValueError):
    """The configuration would run production with default or missing secrets."""


def is_default(secret: str | None) -> bool:
    s = (secret or "").strip()
    return s.lower() in KNOWN or s.lower().startswith("change-me")


def _url_problems(name: str, url: str) -> list[str]:
    parts = urlsplit(url)
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    out = []
    if user == "guest":
        out.append(f"{name}: the broker's default user 'guest'")
    if is_default(password):
        out.append(f"{name}: {'no' if not password else 'a default'} password for {user or 'the default user'!r}")
    return out


def _key_problems(api_keys: str) -> list[str]:
    out = []
    for key, who in parse_api_keys(api_keys).items():
        if is_default(key) or len(key.encode()) < MIN_KEY_BYTES:
            out.append(f"HELPDESK_API_KEYS: entry {who.name!r} has a key shorter than {MIN_KEY_BYTES} bytes "
                       "or a known default")
    return out


def _secret_settings(settings: object) -> list[str]:
    out = []
    for name, info in type(settings).model_fields.items():  # type: ignore[attr-defined]
        if name.endswith("secret") and is_default(getattr(settings, name)):
            out.append(f"{info.alias or name}: a default or empty secret")
    return out


def service_problems(settings: object, service: str) -> list[str]:
    """What production refuses in a service's configuration (empty: nothing)."""
    s = settings
    out = _url_problems("AMQP_URL", s.amqp_url)  # type: ignore[attr-defined]
    if not s.db_url:  # type: ignore[attr-defined]
        out.append(f"HELPDESK_DB_URL: not set; in production {service} connects only as its own role "
                   "(the admin DATABASE_URL is for python -m shared.bootstrap)")
    else:
        out += _url_problems("HELPDESK_DB_URL", s.db_url)  # type: ignore[attr-defined]
    if s.bootstraps:  # type: ignore[attr-defined]
        out.append("HELPDESK_DB_BOOTSTRAP: services do not bootstrap in production (python -m shared.bootstrap)")
    out += _key_problems(s.api_keys)  # type: ignore[attr-defined]
    if "guest" in users_for(s):
        out.append("HELPDESK_BROKER_USERS: trusts the broker's default user 'guest'")
    out += _secret_settings(s)
    return out


def bootstrap_problems(settings: object, services: Iterable[str]) -> list[str]:
    from shared.db import role_password

    out = _url_problems("DATABASE_URL", settings.database_url)  # type: ignore[attr-defined]
    for service in services:
        if is_default(role_password(settings, service)):  # type: ignore[arg-type]
            out.append(f"HELPDESK_DB_PASSWORD_{service.upper()}: empty or a default password for helpdesk_{service}")
    return out


def _refuse(problems: list[str]) -> None:
    if problems:
        raise InsecureConfiguration("HELPDESK_ENV=production refuses to start:\n  - " + "\n  - ".join(problems))


def check_service(settings: object, service: str) -> None:
    """Raise ``InsecureConfiguration`` naming every problem, when ``HELPDESK_ENV=production``."""
    if settings.env == "production":  # type: ignore[attr-defined]
        _refuse(service_problems(settings, service))


def check_bootstrap(settings: object, services: Iterable[str]) -> None:
    if settings.env == "production" or os.environ.get("HELPDESK_ENV") == "production":  # type: ignore[attr-defined]
        _refuse(bootstrap_problems(settings, services))
