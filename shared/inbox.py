"""Inbox: remember processed message ids in the same transaction as the change they caused."""

from __future__ import annotations

import asyncpg


async def claim(conn: asyncpg.Connection, *, schema: str, consumer: str, message_id: str) -> bool:
    """True the first time ``message_id`` is seen by ``consumer``; False for a duplicate.

    Call inside the handler's transaction: a concurrent duplicate blocks on the key until the
    first commits (then sees it) or rolls back (then proceeds).
    """
    row = await conn.fetchval(
        f"INSERT INTO {schema}.inbox (consumer, message_id) VALUES ($1, $2)"
        " ON CONFLICT DO NOTHING RETURNING 1",
        consumer, message_id,
    )
    return row is not None


async def prune(conn: asyncpg.Connection, *, schema: str, days: int) -> int:
    status = await conn.execute(
        f"DELETE FROM {schema}.inbox WHERE processed_at < now() - make_interval(days => $1)", days
    )
    return int(status.split()[-1])
