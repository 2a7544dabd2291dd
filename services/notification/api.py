"""Notification's HTTP API: the delivery log (``GET /v1/deliveries``, API key required)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from services.notification import store
from shared.auth import Principal, require

router = APIRouter(prefix="/v1/deliveries", tags=["deliveries"])


@router.get("", summary="The delivery log: deliveries (recipient masked) with every attempt")
async def deliveries(
    request: Request, who: Annotated[Principal, Depends(require("agent", "analyst"))],
    ticket_no: Annotated[str | None, Query(max_length=40)] = None,
    status: Literal["pending", "sent", "failed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    async with request.app.state.runtime.pool.acquire() as conn:
        rows = await store.list_deliveries(conn, ticket_no=ticket_no, status=status, limit=limit)
    return {"deliveries": rows}
