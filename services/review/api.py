"""Review's HTTP API: ``/v1/reviews/{period}`` (JSON, CSV, XLSX), the tickets behind a figure, the
improvement actions. Every call needs ``X-API-Key``.

Reads need role analyst, supervisor or admin; action writes and freezing supervisor or admin."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from services.review import actions, export, periods, reports, snapshots

from shared.auth import Principal, require
from shared.errors import DomainError, NotFound

router = APIRouter(tags=["review"])
Reader = Annotated[Principal, Depends(require("analyst", "supervisor"))]
Writer = Annotated[Principal, Depends(require("supervisor"))]
Status = Literal["open", "in_progress", "done", "cancelled"]
Reader = Annotated[Principal, Depends(require("analyst", "supervisor"))]
Supervisor = Annotated[Principal, Depends(require("supervisor"))]


def _rt(request: Request) -> Any:
    return request.app.state.runtime


def _period(request: Request, text: str) -> periods.Period:
    return periods.parse_past(text, now=datetime.now(UTC), tz=_rt(request).settings.tz)


class ActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    period: str = Field(max_length=20, description="the review the finding came from, e.g. 2026-11")
    finding: str = Field(min_length=1, max_length=2000)
    metric: str = Field(min_length=1, max_length=200, description="the figure it targets, e.g. fcr_rate")
    measure: str = Field(min_length=1, max_length=2000)
    owner: str = Field(min_length=1, max_length=200)
    deadline: date
    status: Status = "open"
    target_value: float | None = None


class ActionPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    finding: str | None = Field(None, min_length=1, max_length=2000)
    measure: str | None = Field(None, min_length=1, max_length=2000)
    owner: str | None = Field(None, min_length=1, max_length=200)
    deadline: date | None = None
    status: Status | None = None
    target_value: float | None = None


@router.get("/v1/reviews/actions", summary="Improvement actions (改进措施), optionally of one period")
async def list_actions(request: Request, who: Reader, period: str | None = None) -> dict[str, Any]:
    if period is not None:
        periods.parse(period)
    return {"actions": await actions.list_(_rt(request).pool, period=period, now=datetime.now(UTC))}


@router.post("/v1/reviews/actions", status_code=201, summary="Record an improvement action")
async def create_action(request: Request, body: ActionIn, who: Writer) -> dict[str, Any]:
    periods.parse(body.period)
    reports.resolve_metric(body.metric)
    return await actions.create(_rt(request).pool, fields=body.model_dump(), who=who.name)


@router.patch("/v1/reviews/actions/{action_id}", summary="Update an improvement action (status, owner, ...)")
async def update_action(request: Request, action_id: uuid.UUID, body: ActionPatch, who: Writer) -> dict[str, Any]:
    row = await actions.update(_rt(request).pool, action_id=action_id, fields=body.model_dump(exclude_unset=True))
    if row is None:
        raise NotFound("action_id", f"no action {action_id}")
    return row


@router.get("/v1/reviews/{period}", summary="A period's review: every figure with previous and change")
async def get_review(
    request: Request, period: str, who: Reader,
    format: Annotated[Literal["json", "csv", "xlsx"], Query()] = "json",
    recompute: Annotated[bool, Query(description="for a published review: also the live differences")] = False,
) -> Any:
    rt = _rt(request)
    p = _period(request, period)
    body = await reports.review(rt.pool, p, tz=rt.settings.tz, now=datetime.now(UTC), recompute=recompute)
    if format == "json":
        return body
    content, media, ext = export.render(body, format)
    return Response(content, media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="review-{p.name}.{ext}"'})


@router.get("/v1/reviews/{period}/tickets", summary="The tickets behind one figure (the page links here)")
async def get_tickets(
    request: Request, period: str, who: Reader, metric: Annotated[str, Query(max_length=200)] = "tickets",
    limit: Annotated[int | None, Query(ge=1, le=100_000)] = None,
) -> dict[str, Any]:
    rt = _rt(request)
    p = _period(request, period)
    return await reports.tickets(rt.pool, p, metric=metric, tz=rt.settings.tz, now=datetime.now(UTC),
                                 limit=limit or rt.review.tickets_limit)


@router.post("/v1/reviews/{period}/snapshot", summary="Freeze a complete period now and publish it "
                                                      "(the 02:00-on-the-1st job does this for last month)")
async def freeze(request: Request, period: str, who: Writer) -> dict[str, Any]:
    rt = _rt(request)
    now = datetime.now(UTC)
    p = _period(request, period)
    if p.end(rt.settings.tz) > now:
        raise DomainError("period", f"{period!r} has not ended yet: only a complete period is frozen")
    created = await snapshots.freeze(rt.pool, p, tz=rt.settings.tz, now=now, base_url=rt.review.base_url,
                                     trigger="http")
    return {"period": p.name, "frozen": created}
