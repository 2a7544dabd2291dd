"""Improvement actions (改进措施): a finding, the figure it targets, the measure, owner, deadline, status
and target value. The review lists each beside its figure (see ``reports``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from services.review import store


def _view(a: dict[str, Any], now: datetime) -> dict[str, Any]:
    overdue = a["status"] not in ("done", "cancelled") and a["deadline"] < now.date()
    return {**a, "deadline": a["deadline"].isoformat(), "overdue": overdue}


async def list_(pool: asyncpg.Pool, *, period: str | None, now: datetime) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        return [_view(a, now) for a in await store.actions_for_period(conn, period=period)]


async def create(pool: asyncpg.Pool, *, fields: dict[str, Any], who: str) -> dict[str, Any]:
    async with pool.acquire() as conn:
        row = await store.insert_action(conn, fields={"id": uuid.uuid4(), **fields, "created_by": who})
    return _view(row, datetime.now().astimezone())


async def update(pool: asyncpg.Pool, *, action_id: uuid.UUID, fields: dict[str, Any]) -> dict[str, Any] | None:
    async with pool.acquire() as conn:
        row = await store.update_action(conn, action_id=action_id, fields=fields) if fields else \
            next((a for a in await store.actions_for_period(conn, period=None) if a["id"] == str(action_id)), None)
    return None if row is None else _view(row, datetime.now().astimezone())
