"""``make bench-review``: N tickets (default 1,000,000) received in one month, their events written to the
event log, ``rebuild`` replaying them (events/s; target >= 5,000) and the month's review computed
(seconds; target <= 2 s). Figures, never pass/fail. Uses its own vhost and database, removed after.

    python -m scripts.bench_review [--tickets 1000000] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from datetime import UTC, datetime, timedelta

import aio_pika

from tests import support
from tests.review.synthetic import TZ, Ticket

VHOST = DB = "helpdesk_bench_review"


def ticket_events(i: int, start: datetime) -> list:
    t = Ticket(start + timedelta(seconds=(i * 2.5) % (29 * 86400)), channel=("phone", "web", "app")[i % 3],
               customer_key=f"c{i % 50_000}", complaint={"type": "attitude"} if i % 10 == 0 else None)
    t.routed(("fault", "quality", "consultation", "complaint")[i % 4], f"P{i % 4 + 1}", assignee=f"agent-{i % 40}")
    t.responded(5 + i % 90)
    if i % 5:
        t.resolved(60 + i % 900, first_contact=i % 3 == 0)
    t.sla("first_response", "met" if i % 7 else "breached", 15)
    return t.events


async def publish(url: str, n: int, start: datetime) -> int:
    from services.review.stream import _declare
    from shared.settings import Settings
    from shared.topology import EVENT_LOG

    conn = await aio_pika.connect(url)
    ch = await conn.channel(publisher_confirms=False)
    await _declare(ch, Settings())
    count = 0
    for i in range(n):
        for e in ticket_events(i, start):
            await ch.default_exchange.publish(aio_pika.Message(e.to_bytes(), message_id=e.id), routing_key=EVENT_LOG)
            count += 1
    confirm = await conn.channel(publisher_confirms=True)
    await confirm.default_exchange.publish(aio_pika.Message(b"{}"), routing_key="amq.none.bench")  # flush
    await conn.close()
    return count


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    support.create_vhost(VHOST)
    os.environ["AMQP_URL"] = f"amqp://guest:guest@127.0.0.1:5672/{VHOST}"
    os.environ["DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:5432/{DB}"
    from services.review import cli, periods, reports
    from services.review.config import ReviewSettings
    from shared import db
    from shared.settings import Settings

    settings = Settings()
    start = datetime(2026, 11, 1, tzinfo=TZ)
    try:
        t0 = time.perf_counter()
        published = await publish(settings.amqp_url, args.tickets, start)
        print(f"published {published} events for {args.tickets} tickets in {time.perf_counter() - t0:.1f} s")
        result = await cli.rebuild(settings, ReviewSettings(), batch=2000)
        print(f"rebuild: {result['events_read']} events read, {result['events_applied']} applied, "
              f"{result['facts']} facts stored, in {result['seconds']} s = {result['events_per_s']} events/s "
              "(target >= 5,000)")
        pool = await db.create_pool(settings, "review", max_size=2)
        try:
            for attempt in (1, 2):
                t1 = time.perf_counter()
                body = await reports.live(pool, periods.parse("2026-11"), tz=settings.tz, now=datetime.now(UTC))
                print(f"report 2026-11 (run {attempt}): {time.perf_counter() - t1:.2f} s for "
                      f"{body['metrics']['tickets']['value']} tickets (target <= 2 s)")
        finally:
            await pool.close()
    finally:
        if not args.keep:
            support.delete_vhost(VHOST)
            await support.drop_database(DB)


if __name__ == "__main__":
    asyncio.run(main())
