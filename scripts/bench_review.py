"""``make bench-review``: the month's review over 1,000,000 tickets (seconds; target <= 2 s) and the
rebuild's replay rate (events/s; target >= 5,000). Figures, never pass/fail. Own vhost and database,
removed after.

1. ``--replay-tickets`` tickets (default 50,000, ~6 events each) are written to the event log and
   ``rebuild`` replays them through the real fold (events/s);
2. the facts are then topped up to ``--tickets`` (default 1,000,000) received in November 2026, and
   ``--previous-tickets`` (default 1,000,000) in October, with rows generated in SQL (same columns,
   realistic spreads); November's review is computed twice with October not yet published (both months
   scanned), then October is frozen as the 02:00 job does on 1 November and November's review computed
   twice again (October's figures from its snapshot) — the second is the figure against the target.

    python -m scripts.bench_review [--tickets 1000000] [--previous-tickets 1000000] [--replay-tickets 50000] [--keep]
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
    from shared.trust import url_user

    conn = await aio_pika.connect(url)
    ch = await conn.channel(publisher_confirms=False)
    await _declare(ch, Settings())
    count = 0
    for lo in range(0, n, 500):
        msgs = [aio_pika.Message(e.to_bytes(), message_id=e.id, user_id=url_user(url))  # a named publisher
                for i in range(lo, min(n, lo + 500))
                for e in ticket_events(i, start)]
        await asyncio.gather(*(ch.default_exchange.publish(m, routing_key=EVENT_LOG) for m in msgs))
        count += len(msgs)
    confirm = await conn.channel(publisher_confirms=True)
    await confirm.default_exchange.publish(aio_pika.Message(b"{}"), routing_key="amq.none.bench")  # flush
    await conn.close()
    return count


# Generated facts: every column the report reads, spread like the replayed ones (business durations a
# fraction of the wall-clock ones; most resolved tickets closed a while after, the rest still open).
TOP_UP = """
INSERT INTO review.facts (ticket_no, received_at, channel, customer_key, complaint, complaint_type, category,
    sub_item, priority, department, agent, first_response_at, first_resolved_at, final_resolved_at, first_contact,
    reopen_count, escalations, fr_us, res_us, fr_bus_us, res_bus_us, fr_sla, res_sla, surveys_sent,
    surveys_answered, surveys_satisfied, resolved_ats, closed_at, nu_met, nu_breached)
SELECT $3 || i, r, (ARRAY['phone','web','app','wechat','email'])[1 + i % 5], 'c' || (i % 50000), i % 10 = 0,
    CASE WHEN i % 10 = 0 THEN 'attitude' END, (ARRAY['fault','quality','consultation','complaint'])[1 + i % 4],
    'item-' || (i % 7), 'P' || (1 + i % 4), 'dept-' || (i % 6), 'agent-' || (i % 40), r + fr * interval '1 microsecond',
    CASE WHEN i % 5 > 0 THEN r + res * interval '1 microsecond' END,
    CASE WHEN i % 5 > 0 THEN r + res * interval '1 microsecond' END, CASE WHEN i % 5 > 0 THEN i % 3 = 0 END,
    (i % 17 = 0)::int, (i % 13 = 0)::int, fr, CASE WHEN i % 5 > 0 THEN res END, fr * 3 / 5,
    CASE WHEN i % 5 > 0 THEN res / 2 END,
    CASE WHEN i % 7 = 0 THEN 'breached' ELSE 'met' END, CASE WHEN i % 5 > 0 THEN
        CASE WHEN i % 11 = 0 THEN 'breached' ELSE 'met' END END,
    (i % 5 > 0)::int, (i % 10 > 3)::int, (i % 10 > 5)::int,
    CASE WHEN i % 5 > 0 THEN ARRAY[r + res * interval '1 microsecond'] ELSE '{}' END,
    CASE WHEN i % 5 > 0 AND i % 9 > 0 THEN r + res * interval '1 microsecond' + interval '3 days' END,
    i % 3, (i % 19 = 0)::int
FROM (SELECT i, $2::timestamptz + ((i * 2.5) % (29 * 86400)) * interval '1 second' AS r,
             (300 + (i * 7919) % 86400)::bigint * 1000000 + i % 1000000 AS fr,
             (3600 + (i * 104729) % 604800)::bigint * 1000000 + (i * 37) % 1000000 AS res
      FROM generate_series(1::bigint, $1::bigint) AS i) g
"""


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--replay-tickets", type=int, default=50_000)
    parser.add_argument("--previous-tickets", type=int, default=1_000_000, help="tickets received in 2026-10")
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
        published = await publish(settings.amqp_url, args.replay_tickets, start)
        print(f"published {published} events for {args.replay_tickets} tickets in {time.perf_counter() - t0:.1f} s")
        result = await cli.rebuild(settings, ReviewSettings(), batch=2000)
        print(f"rebuild: {result['events_read']} events read, {result['events_applied']} applied, "
              f"{result['facts']} facts stored, in {result['seconds']} s = {result['events_per_s']} events/s "
              "(target >= 5,000)")
        pool = await db.create_pool(settings, "review", max_size=5)  # a report reads on 4 connections at once
        try:
            october = datetime(2026, 10, 1, tzinfo=TZ)
            async with pool.acquire() as conn:
                t1 = time.perf_counter()
                await conn.execute(TOP_UP, max(0, args.tickets - result["facts"]), start, "g")
                await conn.execute(TOP_UP, args.previous_tickets, october, "o")
                await conn.execute("ANALYZE review.facts")
                stored = await conn.fetchval("SELECT count(*) FROM review.facts")
                size = await conn.fetchval("SELECT pg_size_pretty(pg_table_size('review.facts'))")
            print(f"facts topped up to {stored} stored rows ({args.tickets} in 2026-11, {args.previous_tickets} in"
                  f" 2026-10; {size}) in {time.perf_counter() - t1:.1f} s")
            nov, oct_ = periods.parse("2026-11"), periods.parse("2026-10")

            async def timed(label: str) -> None:
                for attempt in (1, 2):
                    t1 = time.perf_counter()
                    body = await reports.review(pool, nov, tz=settings.tz, now=datetime.now(UTC))
                    print(f"report 2026-11, {label} (run {attempt}): {time.perf_counter() - t1:.2f} s for "
                          f"{body['metrics']['tickets']['value']} tickets, previous "
                          f"{body['metrics']['tickets']['previous']} ({body['previous_source']})")

            await timed("2026-10 not published: both months scanned")
            from services.review import snapshots

            t1 = time.perf_counter()  # what the 02:00 job does on 1 November
            await snapshots.freeze(pool, oct_, tz=settings.tz, now=datetime(2026, 11, 1, 2, tzinfo=TZ),
                                   base_url="http://bench")
            print(f"2026-10 frozen (its review computed and kept with its statistics) in {time.perf_counter() - t1:.2f} s")
            await timed("2026-10 published, as from 02:00 on 1 November (target <= 2 s)")
            await snapshots.freeze(pool, nov, tz=settings.tz, now=datetime.now(UTC), base_url="http://bench")
            t2 = time.perf_counter()
            await reports.review(pool, nov, tz=settings.tz, now=datetime.now(UTC))
            print(f"report 2026-11 once published itself (its frozen snapshot): {time.perf_counter() - t2:.3f} s")
        finally:
            await pool.close()
    finally:
        if not args.keep:
            support.delete_vhost(VHOST)
            await support.drop_database(DB)


if __name__ == "__main__":
    asyncio.run(main())
