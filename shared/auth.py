"""API keys for the HTTP APIs: ``X-API-Key`` must be one of ``HELPDESK_API_KEYS`` (else 401)."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, Request

from shared.errors import DomainError


class Unauthorized(DomainError):
    status = 401


async def caller(request: Request, x_api_key: Annotated[str | None, Header()] = None) -> str:
    """The caller's name for the presented ``X-API-Key`` (from ``HELPDESK_API_KEYS``), else 401.

    Every configured key is compared in constant time, so timing tells nothing about them.
    """
    keys = request.app.state.runtime.settings.api_key_map
    name = None
    if x_api_key:
        for key, key_name in keys.items():
            if hmac.compare_digest(key.encode(), x_api_key.encode()):
                name = key_name
    if name is None:
        raise Unauthorized("X-API-Key", "missing or invalid API key")
    return name


Caller = Annotated[str, Depends(caller)]
