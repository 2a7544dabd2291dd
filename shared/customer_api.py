"""``GET /v1/customers/{customer_key}/export`` (role admin) for a service that answers for its own
schema; intake's export gathers every service's answer (README "Data protection")."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, Path, Request

from shared.auth import Principal, require

CUSTOMER_KEY_PATTERN = r"^[0-9a-f]{64}$"
KeyPath = Annotated[str, Path(pattern=CUSTOMER_KEY_PATTERN, description="the customer's customer_key")]
Admin = Annotated[Principal, Depends(require("admin"))]
Export = Callable[..., Awaitable[dict[str, Any]]]


def customer_export(export: Export) -> APIRouter:
    """A router whose export route calls ``export(pool, customer_key=...)``."""
    router = APIRouter(prefix="/v1/customers", tags=["customers"])

    @router.get("/{customer_key}/export", summary="Everything this service holds about a customer (admin)")
    async def export_route(request: Request, customer_key: KeyPath, who: Admin) -> dict[str, Any]:
        pool: asyncpg.Pool = request.app.state.runtime.pool
        return await export(pool, customer_key=customer_key)

    return router
