"""Who may do what over HTTP: ``X-API-Key`` names a caller from ``HELPDESK_API_KEYS`` and its roles.

``HELPDESK_API_KEYS`` is comma-separated ``name:key:role+role`` entries (contract, HTTP section).
A route states what it needs with ``caller = Depends(require("agent"))``: no or an unknown key is a
401, a key without the role a 403 naming the role; ``admin`` passes every check and ``supervisor``
every ``agent`` check. The roles and what each may do are in README "Roles".
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request, Security
from fastapi.security import APIKeyHeader

from shared.errors import DomainError

ROLES = ("channel", "agent", "supervisor", "contacts", "analyst", "admin")
# A role that includes another: a supervisor may do whatever an agent may.
INCLUDES = {"supervisor": frozenset({"agent"})}
# Lifecycle commands only a supervisor may give (over HTTP and on helpdesk.commands); the rest are an agent's.
SUPERVISOR_COMMANDS = frozenset({"close", "reprioritize"})


def command_roles(action: str) -> tuple[str, ...]:
    """The roles the lifecycle command ``action`` needs."""
    return ("supervisor",) if action in SUPERVISOR_COMMANDS else ("agent",)


class Unauthorized(DomainError):
    status = 401


class Forbidden(DomainError):
    status = 403


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: the entry's name (recorded as the caller) and its roles."""

    name: str
    roles: frozenset[str]

    def __str__(self) -> str:
        return self.name

    def has(self, role: str) -> bool:
        """Whether the caller may act as ``role`` (``admin`` may act as any, ``supervisor`` as agent)."""
        if "admin" in self.roles or role in self.roles:
            return True
        return any(role in INCLUDES.get(r, ()) for r in self.roles)

    def has_any(self, roles: Iterable[str]) -> bool:
        return any(self.has(r) for r in roles)

    @property
    def channel_only(self) -> bool:
        """A gateway key: it sees only the tickets it created itself."""
        return not self.has_any(r for r in ROLES if r != "channel")


def parse_api_keys(text: str) -> dict[str, Principal]:
    """``name:key:role+role,...`` -> key -> ``Principal``; a bad entry is a ``ValueError`` naming it
    (by its name, never its key)."""
    keys: dict[str, Principal] = {}
    names: set[str] = set()
    for entry in filter(None, (p.strip() for p in text.split(","))):
        parts = entry.split(":")
        name = parts[0].strip()
        label = repr(name) if name else "with no name"
        if len(parts) != 3 or not name or not parts[1]:
            raise ValueError(f"HELPDESK_API_KEYS: entry {label} is not name:key:role+role")
        roles = [r.strip() for r in parts[2].split("+") if r.strip()]
        if not roles:
            raise ValueError(f"HELPDESK_API_KEYS: entry {label} has no roles (one or more of {', '.join(ROLES)})")
        unknown = [r for r in roles if r not in ROLES]
        if unknown:
            raise ValueError(f"HELPDESK_API_KEYS: entry {label} has unknown role {unknown[0]!r} "
                             f"(roles: {', '.join(ROLES)})")
        if name in names or parts[1] in keys:
            raise ValueError(f"HELPDESK_API_KEYS: entry {label} repeats a name or key")
        names.add(name)
        keys[parts[1]] = Principal(name, frozenset(roles))
    return keys


def authenticate(keys: dict[str, Principal], presented: str | None) -> Principal:
    """The caller for ``presented``, else 401. Every configured key is compared in constant time,
    so timing tells nothing about them."""
    found = None
    if presented:
        for key, principal in keys.items():
            if hmac.compare_digest(key.encode(), presented.encode()):
                found = principal
    if found is None:
        raise Unauthorized("X-API-Key", "missing or invalid API key")
    return found


API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="ApiKey",
                       description="A key of HELPDESK_API_KEYS (name:key:role+role)")


async def principal(request: Request, x_api_key: Annotated[str | None, Security(API_KEY)] = None) -> Principal:
    """The authenticated caller (any role), else 401."""
    return authenticate(request.app.state.runtime.settings.api_principals, x_api_key)


def ensure(who: Principal, *roles: str) -> Principal:
    """``who`` if it holds one of ``roles`` (or ``admin``), else 403 naming the role needed."""
    if not who.has_any(roles):
        raise Forbidden("X-API-Key", f"needs role {' or '.join(roles)} (caller {who.name!r} has "
                                     f"{'+'.join(sorted(who.roles))})")
    return who


def require(*roles: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that lets through a caller holding one of ``roles`` (or ``admin``): 401 without a
    valid key, 403 naming the role needed otherwise. Returns the ``Principal``."""
    unknown = [r for r in roles if r not in ROLES]
    if unknown or not roles:
        raise ValueError(f"require(): unknown roles {unknown or 'none given'}")

    async def check(who: Annotated[Principal, Depends(principal)]) -> Principal:
        return ensure(who, *roles)

    check.__name__ = f"require_{'_or_'.join(roles)}"
    check.roles = roles  # type: ignore[attr-defined]  # read by the role table and the route test
    return check


async def caller(request: Request, x_api_key: Annotated[str | None, Header()] = None) -> str:
    """Any valid key's caller name (kept for routes not yet given a role; prefer ``require``)."""
    return authenticate(request.app.state.runtime.settings.api_principals, x_api_key).name


Caller = Annotated[str, Depends(caller)]
