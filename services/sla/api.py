"""The SLA service's HTTP API: a ticket's clocks (API key required)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from services.sla import usecases
from shared.auth import Principal, require
from shared.errors import NotFound
from shared.messages import TICKET_NO_PATTERN

router = APIRouter(tags=["sla"])


@router.get("/v1/sla/{ticket_no}", summary="A ticket's SLA clocks: targets, deadlines, state")
async def ticket_clocks(request: Request, ticket_no: str,
                        who: Annotated[Principal, Depends(require("agent", "analyst"))]) -> dict[str, Any]:
    if not re.fullmatch(TICKET_NO_PATTERN, ticket_no):
        raise NotFound("ticket_no", f"{ticket_no!r} is not a ticket number")
    found = await usecases.view(request.app.state.runtime.pool, ticket_no=ticket_no)
    if not found:
        raise NotFound("ticket_no", f"no SLA clocks for {ticket_no}")
    return {"ticket_no": ticket_no, "clocks": found}
