"""SQL of the customer's progress links (``intake.progress_links``). Kept apart from ``store.py`` so
the page can grow without touching the tickets' statements."""

from __future__ import annotations

from datetime import datetime

import asyncpg

S = "intake"


async def link(conn: asyncpg.Connection, *, ticket_no: str, for_update: bool = False) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT * FROM {S}.progress_links WHERE ticket_no = $1{lock}", ticket_no)


async def add_links(conn: asyncpg.Connection, links: list[tuple[str, bytes, bytes]]) -> dict[str, bytes]:
    """The salt of each ticket's link (``links``: ticket_no, salt, token_hash): the one given, inserted now,
    or the one it already had (made earlier or by a concurrent caller). One statement for them all: the
    insert's rows, and the stored ones (a statement does not see its own insert, so the two never overlap)."""
    rows = await conn.fetch(
        f"WITH want AS (SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[]) AS w(ticket_no, salt, token_hash)),"
        f" ins AS (INSERT INTO {S}.progress_links (ticket_no, salt, token_hash) SELECT * FROM want"
        " ON CONFLICT (ticket_no) DO NOTHING RETURNING ticket_no, salt)"
        f" SELECT ticket_no, salt FROM ins UNION ALL SELECT p.ticket_no, p.salt FROM want w,"
        f" LATERAL (SELECT ticket_no, salt FROM {S}.progress_links x WHERE x.ticket_no = w.ticket_no LIMIT 1) p",
        [t for t, _, _ in links], [s for _, s, _ in links], [h for _, _, h in links],
    )
    salts = {r["ticket_no"]: bytes(r["salt"]) for r in rows}
    for no, _, _ in links:
        if no not in salts:  # a concurrent caller's row, committed after this statement's snapshot was taken
            salts[no] = bytes((await link(conn, ticket_no=no))["salt"])  # type: ignore[index]
    return salts


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
