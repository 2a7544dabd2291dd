"""SQL of the customer's progress links (``intake.progress_links``). Kept apart from ``store.py`` so
the page can grow without touching the tickets' statements."""

from __future__ import annotations

from datetime import datetime

import asyncpg

S = "intake"


async def link(conn: asyncpg.Connection, *, ticket_no: str, for_update: bool = False) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT * FROM {S}.progress_links WHERE ticket_no = $1{lock}", ticket_no)


async def add_link(conn: asyncpg.Connection, *, ticket_no: str, salt: bytes, token_hash: bytes) -> bytes:
    """The salt of the ticket's link: this one, inserted now, or the one it already had (made earlier or by
    a concurrent caller). One statement: the insert's row, else the stored one."""
    got = await conn.fetchval(
        f"WITH ins AS (INSERT INTO {S}.progress_links (ticket_no, salt, token_hash) VALUES ($1, $2, $3)"
        " ON CONFLICT (ticket_no) DO NOTHING RETURNING salt)"
        f" SELECT salt FROM ins UNION ALL SELECT salt FROM {S}.progress_links WHERE ticket_no = $1 LIMIT 1",
        ticket_no, salt, token_hash,
    )
    if got is None:  # a concurrent caller's row, committed after this statement's snapshot was taken
        got = (await link(conn, ticket_no=ticket_no))["salt"]  # type: ignore[index]
    return bytes(got)


async def ticket_of(conn: asyncpg.Connection, *, token_hash: bytes) -> str | None:
    return await conn.fetchval(f"SELECT ticket_no FROM {S}.progress_links WHERE token_hash = $1", token_hash)


async def save_window(conn: asyncpg.Connection, *, ticket_no: str, start: datetime | None, writes: int) -> None:
    await conn.execute(
        f"UPDATE {S}.progress_links SET window_start = $2, writes = $3 WHERE ticket_no = $1", ticket_no, start, writes)


async def mark_callback(conn: asyncpg.Connection, *, ticket_no: str, at: datetime) -> None:
    await conn.execute(f"UPDATE {S}.progress_links SET last_callback_at = $2 WHERE ticket_no = $1", ticket_no, at)


async def mark_confirmed(conn: asyncpg.Connection, *, ticket_no: str, resolved_at: datetime) -> None:
    await conn.execute(
        f"UPDATE {S}.progress_links SET confirmed_resolved_at = $2 WHERE ticket_no = $1", ticket_no, resolved_at)
