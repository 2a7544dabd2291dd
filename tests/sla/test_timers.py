"""Timers across restarts and replicas, in a vhost and database of their own (so the session's SLA
service cannot fire these timers for them)."""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from services.sla import domain, store
from services.sla.business_time import AlwaysOpen
from shared.settings import Settings
from tests import support
from tests.conftest import RUN_ID, start_service
from tests.sla.conftest import emit, routed


@pytest.fixture(scope="module")
async def isolated(run_env: dict[str, str], fast_policy: None) -> AsyncIterator[Settings]:
    name = f"helpdesk_test_{RUN_ID}_timers"
    support.create_vhost(name)
    settings = Settings(AMQP_URL=f"amqp://guest:guest@127.0.0.1:5672/{name}",
                        DATABASE_URL=f"postgresql://postgres@127.0.0.1:5432/{name}", HELPDESK_DB_POOL_MAX=3)
    yield settings
    support.delete_vhost(name)
    await support.drop_database(name)


async def started(settings: Settings):  # noqa: ANN201
    from services.sla.app import create_app

    gen = start_service(create_app, settings)
    return gen, await asyncio.wait_for(gen.__anext__(), 60)


async def stopped(gen) -> None:  # noqa: ANN001
    await asyncio.wait_for(gen.aclose(), 60)


def ticket_no() -> str:
    return f"{datetime.now(UTC):%Y%m%d}{uuid.uuid4().int % 10**7:07d}"


async def test_timer_due_while_down_fires_once_when_back(isolated):
    async with support.Tap(isolated.amqp_url) as tap, support.Publisher(isolated.amqp_url) as pub:
        gen, _ = await started(isolated)
        no, received = ticket_no(), datetime.now(UTC) - timedelta(seconds=2)
        await emit(pub, service="routing", type="ticket.routed", ticket_no=no, **routed("P1"))
        await emit(pub, service="intake", type="ticket.created", ticket_no=no, channel="web",
                   customer={"name": "王"}, urgency="urgent", impact="single",
                   received_at=received.isoformat(), created_at=received.isoformat())
        # routed and created may be applied in either order: wait for the P1 deadline either way
        [start] = await tap.wait_events(lambda e: e.subject == no and e.type == "sla.started"
                                        and e.data["metric"] == "first_response" and e.data["policy"] == "default:P1")
        await stopped(gen)  # the service stops before the 5 s deadline
        due = datetime.fromisoformat(start.data["due_at"])
        assert tap.events(lambda e: e.subject == no and e.type == "sla.breached") == []
        await asyncio.sleep(min(10.0, max(0.0, (due - datetime.now(UTC)).total_seconds()) + 0.5))
        gen, _ = await started(isolated)
        try:
            [breach] = await tap.wait_events(lambda e: e.subject == no and e.type == "sla.breached")
            assert breach.data["due_at"] == start.data["due_at"]
            assert datetime.fromisoformat(breach.data["breached_at"]) > due
            await asyncio.sleep(0.5)
            assert len(tap.events(lambda e: e.subject == no and e.type in ("sla.breached", "sla.warning"))) == 1
        finally:
            await stopped(gen)


async def test_two_replicas_fire_each_timer_exactly_once(isolated):
    n = 400
    old = os.environ.get("SLA_TIMER_BATCH")
    os.environ["SLA_TIMER_BATCH"] = "25"  # small batches: the replicas interleave
    try:
        async with support.Tap(isolated.amqp_url, keys=("sla.breached",)) as tap:
            gen_a, a = await started(isolated)
            gen_b, _ = await started(isolated)
            try:
                always, now = AlwaysOpen(), datetime.now(UTC)
                clocks = []
                for _ in range(n):
                    opened = now - timedelta(seconds=60) + timedelta(seconds=random.uniform(0.5, 2.5))
                    c = domain.Clock(ticket_no=ticket_no(), metric="resolution", priority="P1", policy="test",
                                     calendar="24x7", target_s=60, started_at=opened, open_since=opened, warned=True)
                    clocks.append(domain.schedule(c, always, 0.8))
                async with a.rt.pool.acquire() as conn, conn.transaction():
                    await store.save_clocks(conn, clocks)
                try:
                    events = await tap.wait_events(lambda e: True, count=n, timeout=90)
                except TimeoutError:  # say which stage stalled: firing, relaying or delivery
                    async with a.rt.pool.acquire() as conn:
                        due = await conn.fetchval("SELECT count(*) FROM sla.clocks WHERE fire_at IS NOT NULL"
                                                  " AND ticket_no = ANY($1)", [c.ticket_no for c in clocks])
                        unsent = await conn.fetchval("SELECT count(*) FROM sla.outbox WHERE sent_at IS NULL")
                    pytest.fail(f"{len(tap.events())}/{n} breaches received; {due} timers not fired,"
                                f" {unsent} outbox rows unsent")
                await asyncio.sleep(1.0)  # anything fired twice would arrive by now
                per_ticket = Counter(e.subject for e in tap.events())
                assert len(per_ticket) == n and set(per_ticket.values()) == {1}
                assert {e.subject for e in events} == {c.ticket_no for c in clocks}
                async with a.rt.pool.acquire() as conn:
                    assert await conn.fetchval(
                        "SELECT count(*) FROM sla.outbox WHERE routing_key = 'sla.breached' AND ticket_no = ANY($1)",
                        [c.ticket_no for c in clocks]) == n
                    assert await conn.fetchval("SELECT count(*) FROM sla.clocks WHERE fire_at IS NOT NULL"
                                               " AND ticket_no = ANY($1)", [c.ticket_no for c in clocks]) == 0
            finally:
                await stopped(gen_b)
                await stopped(gen_a)
    finally:
        if old is None:
            os.environ.pop("SLA_TIMER_BATCH", None)
        else:
            os.environ["SLA_TIMER_BATCH"] = old

