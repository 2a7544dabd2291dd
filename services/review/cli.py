"""The review from a shell: ``rebuild``, ``report``, ``definitions`` (see ``__main__``)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime

import orjson

from services.review import definitions, export, periods, reports, store, stream
from services.review.config import ReviewSettings, business_time, calendars_path, load_calendars
from shared import db
from shared.settings import Settings

SERVICE = "review"


async def _pool(settings: Settings):
    if settings.bootstraps:
        await db.bootstrap(settings, SERVICE)
    pool = await db.create_pool(settings, SERVICE, max_size=4)
    async with pool.acquire() as conn:
        from pathlib import Path

        await db.migrate(conn, SERVICE, Path(__file__).parent / "migrations")
    return pool


async def rebuild(settings: Settings, cfg: ReviewSettings, *, batch: int = 1000) -> dict:
    """Empty the facts, replay the event log from its first offset, stop at its end; returns the counts."""
    business = business_time(load_calendars(calendars_path(cfg), settings.tz))
    pool = await _pool(settings)
    try:
        async with pool.acquire() as conn, conn.transaction():
            dropped = await store.reset(conn)
        stats = await stream.replay(settings, pool, business, batch=batch)
        async with pool.acquire() as conn:
            counts = await store.counts(conn)
    finally:
        await pool.close()
    return {"dropped_facts": dropped, "events_read": stats.read, "events_applied": stats.applied,
            "skipped": stats.skipped, "seconds": round(stats.seconds, 3), "applying_s": round(stats.applying_s, 3), "events_per_s": round(stats.rate, 1),
            **counts, "unreadable_examples": stats.errors}


async def report(settings: Settings, period_text: str, fmt: str) -> bytes:
    pool = await _pool(settings)
    try:
        period = periods.parse_past(period_text, now=datetime.now(UTC), tz=settings.tz)
        body = await reports.review(pool, period, tz=settings.tz, now=datetime.now(UTC))
    finally:
        await pool.close()
    if fmt == "json":
        return orjson.dumps(body, option=orjson.OPT_INDENT_2)
    return export.render(body, fmt)[0]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.review")
    sub = parser.add_subparsers(dest="command", required=True)
    rb = sub.add_parser("rebuild", help="empty the facts and replay the event log from its first offset")
    rb.add_argument("--batch", type=int, default=1000)
    rp = sub.add_parser("report", help="print a period's review")
    rp.add_argument("period")
    rp.add_argument("--format", choices=("json", "csv", "xlsx"), default="json")
    rp.add_argument("--out", help="write to this file (xlsx needs it unless stdout is redirected)")
    df = sub.add_parser("definitions", help="every figure's definition")
    df.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    settings = Settings()
    if args.command == "definitions":
        print(definitions.markdown() if args.markdown else orjson.dumps(definitions.DEFINITIONS,
                                                                          option=orjson.OPT_INDENT_2).decode())
        return 0
    if args.command == "rebuild":
        result = asyncio.run(rebuild(settings, ReviewSettings(), batch=args.batch))
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        return 0
    try:
        content = asyncio.run(report(settings, args.period, args.format))
    except Exception as exc:  # noqa: BLE001 - a shell user gets the reason, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        with open(args.out, "wb") as fh:
            fh.write(content)
    else:
        sys.stdout.buffer.write(content)
    return 0
