"""Inbox housekeeping. Claims are made by the unit of work (``shared.unit``), in the transaction of the
change they caused."""

from __future__ import annotations

import asyncpg


async def prune(conn: asyncpg.Connection, *, schema: str, days: int) -> int:
    status = await conn.execute(
        f"DELETE FROM {schema}.inbox WHERE processed_at < now() - make_interval(days => $1)", days
    )
    return int(status.split()[-1])
