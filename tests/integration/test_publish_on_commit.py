"""Publish on commit, on the real broker and database: a transaction's events are published by the
process that committed them right after the commit (their rows leased meanwhile), with no relay pass;
what that hand-off cannot publish is the relay's — a process that died between its commit and its
publish leaves leased rows the relay takes once the lease has run out (never before), a failed publish
drops its lease and the relay takes it at once. Off, the relay publishes every event as before."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import orjson
import pytest

from shared.events import EventData
from shared.runtime import Runtime
from shared.settings import Settings
from shared.topology import EVENTS

SERVICE = "poctest"


class Pinged(EventData):
    type = "test.pinged"
    body: str


@pytest.fixture
async def make_rt(run_env: dict[str, str], drop_db_at_end: None, tmp_path: Path) -> Any:
    (tmp_path / "0001_nothing.sql").write_text("SELECT 1;")

    def make(publish_on_commit: bool = True) -> Runtime:  # whatever the environment says
        return Runtime(SERVICE, Settings().model_copy(update={"publish_on_commit": publish_on_commit}), tmp_path)
    return make


class Tap:
    """Every ``test.pinged`` published to ``helpdesk.events``, with when it arrived."""

    def __init__(self, url: str) -> None:
        self.url, self.got = url, {}

    async def __aenter__(self) -> Tap:
        self.conn = await aio_pika.connect_robust(self.url)
        ch = await self.conn.channel()
        ex = await ch.declare_exchange(EVENTS.name, aio_pika.ExchangeType.TOPIC, durable=True)
        self.queue = await ch.declare_queue(exclusive=True)
        await self.queue.bind(ex, routing_key="test.pinged")
        await self.queue.consume(self._on, no_ack=True)
        return self

    async def _on(self, msg: aio_pika.abc.AbstractIncomingMessage) -> None:
        self.got.setdefault(orjson.loads(msg.body)["data"]["body"], time.time())

    async def __aexit__(self, *exc: object) -> None:
        await self.conn.close()

    async def wait(self, bodies: set[str], seconds: float) -> None:
        end = time.monotonic() + seconds
        while not bodies <= set(self.got) and time.monotonic() < end:
            await asyncio.sleep(0.02)


@pytest.fixture
async def tap(run_env: dict[str, str]) -> AsyncIterator[Tap]:
    async with Tap(run_env["AMQP_URL"]) as t:
        yield t


def counted_passes(rt: Runtime) -> list[int]:
    """The rows each relay pass claimed (``drain_once``'s return values)."""
    claimed: list[int] = []
    original = rt.relay.drain_once  # type: ignore[union-attr]

    async def drain_once() -> int:
        n = await original()
        claimed.append(n)
        return n
    rt.relay.drain_once = drain_once  # type: ignore[union-attr,method-assign]
    return claimed


async def ping(rt: Runtime, *bodies: str) -> None:
    async with rt.unit() as u:
        for b in bodies:
            u.emit(f"T-{b}", Pinged(body=b))


async def rows(rt: Runtime, bodies: list[str]) -> list[Any]:
    return await rt.pool.fetch(
        f"SELECT convert_from(body, 'UTF8')::jsonb -> 'data' ->> 'body' AS b, sent_at, lease_until, created_at"
        f" FROM {SERVICE}.outbox WHERE convert_from(body, 'UTF8')::jsonb -> 'data' ->> 'body' = ANY($1)", bodies)


async def until_sent(rt: Runtime, bodies: list[str]) -> list[Any]:
    """The rows once all are marked sent (the marking statement follows the confirms), or as they are."""
    for _ in range(100):
        got = await rows(rt, bodies)
        if len(got) == len(bodies) and all(r["sent_at"] for r in got):
            break
        await asyncio.sleep(0.02)
    return got


async def pinged(rt: Runtime, tap: Tap, tag: str, n: int) -> list[Any]:
    """``n`` events emitted in one unit, seen on the broker; their outbox rows once marked sent."""
    bodies = [f"{tag}-{uuid.uuid4().hex[:6]}-{i}" for i in range(n)]
    await ping(rt, *bodies)
    await tap.wait(set(bodies), 10)
    assert set(bodies) <= set(tap.got)
    got = await until_sent(rt, bodies)
    assert len(got) == n
    return got


async def test_the_committing_process_publishes_its_events_without_a_relay_pass(make_rt: Any, tap: Tap) -> None:
    rt = make_rt()
    claimed = counted_passes(rt)
    async with rt.running():
        got = await pinged(rt, tap, "now", 3)
        assert all(r["sent_at"] and r["lease_until"] for r in got)  # written leased, marked sent
        await asyncio.sleep(0.3)
    assert sum(claimed) == 0  # no relay pass took any of them (and no NOTIFY woke one for them)


async def test_a_process_that_died_before_publishing_leaves_them_to_the_relay_after_the_lease(
        make_rt: Any, tap: Tap) -> None:
    rt = make_rt()
    rt.relay.lease_s = 2.0  # type: ignore[union-attr]
    rt.relay.hand = lambda rows: None  # type: ignore[union-attr,method-assign]  # committed, then gone
    claimed = counted_passes(rt)
    async with rt.running():
        body = f"orphan-{uuid.uuid4().hex[:6]}"
        await ping(rt, body)
        [row] = await rows(rt, [body])
        assert row["sent_at"] is None and row["lease_until"] is not None
        rt.relay.wake()  # type: ignore[union-attr]  # a pass now must leave the leased row alone
        await tap.wait({body}, 10)  # a later pass (the fallback, every 2 s) finds the lease ended
        assert body in tap.got
        assert tap.got[body] >= row["lease_until"].timestamp()  # never while the lease was live
        [row] = await until_sent(rt, [body])
        assert row["sent_at"] is not None
    assert sum(claimed) >= 1


async def test_a_failed_publish_drops_its_lease_and_the_relay_takes_it_at_once(make_rt: Any, tap: Tap) -> None:
    rt = make_rt()
    relay = rt.relay
    assert relay is not None and relay.lease_s >= 10  # so only a dropped lease explains a prompt retry
    original, calls = relay._publish_all, []

    async def flaky(rows: list[Any]) -> list[BaseException | None]:
        calls.append(len(rows))
        if len(calls) == 1:
            return [ConnectionError("broker said no")] * len(rows)
        return await original(rows)
    relay._publish_all = flaky  # type: ignore[method-assign]
    claimed = counted_passes(rt)
    async with rt.running():
        body = f"retry-{uuid.uuid4().hex[:6]}"
        started = time.time()
        await ping(rt, body)
        await tap.wait({body}, 8)
        assert body in tap.got and tap.got[body] - started < relay.lease_s  # before the lease would have ended
        [row] = await until_sent(rt, [body])
        assert row["sent_at"] is not None and row["lease_until"] is None
    assert sum(claimed) >= 1  # the relay published it


async def test_off_the_relay_publishes_every_event(make_rt: Any, tap: Tap) -> None:
    rt = make_rt(publish_on_commit=False)
    claimed = counted_passes(rt)
    async with rt.running():
        got = await pinged(rt, tap, "off", 2)
        assert all(r["lease_until"] is None and r["sent_at"] for r in got)  # no lease: NOTIFY woke the relay
    assert sum(claimed) >= 2


def counted_marks(rt: Runtime) -> list[int]:
    """How many rows each statement marking handed rows sent covered."""
    marks: list[int] = []
    relay = rt.relay
    assert relay is not None
    original = relay._mark

    async def mark(conn: Any, *, sent: Any, failed: Any = ()) -> None:
        if sent:
            marks.append(len(sent))
        await original(conn, sent=sent, failed=failed)
    relay._mark = mark  # type: ignore[method-assign]
    return marks


async def test_the_rows_of_many_transactions_are_marked_sent_in_one_statement(make_rt: Any, tap: Tap) -> None:
    rt = make_rt()
    rt.relay.mark_delay_s = 1.0  # type: ignore[union-attr]  # every ping below commits well within it
    marks = counted_marks(rt)
    async with rt.running():
        bodies = [f"group-{uuid.uuid4().hex[:6]}-{i}" for i in range(5)]
        for b in bodies:  # five transactions, each handed to the relay on its commit
            await ping(rt, b)
        await tap.wait(set(bodies), 10)
        assert set(bodies) <= set(tap.got)  # published at once, not held for the marking
        got = await until_sent(rt, bodies)
        assert len(got) == 5 and all(r["sent_at"] for r in got)
    assert marks == [5]


async def test_a_stopping_process_marks_what_it_published_before_it_goes(make_rt: Any, tap: Tap,
                                                                         run_env: dict[str, str]) -> None:
    rt = make_rt()
    rt.relay.mark_delay_s = 60.0  # type: ignore[union-attr]  # only the stop can mark them
    body = f"bye-{uuid.uuid4().hex[:6]}"
    async with rt.running():
        await ping(rt, body)
        await tap.wait({body}, 10)
        [row] = await rows(rt, [body])
        assert row["sent_at"] is None  # confirmed, its mark still waiting
    conn = await asyncpg.connect(run_env["DATABASE_URL"])
    try:
        sent_at = await conn.fetchval(
            f"SELECT sent_at FROM {SERVICE}.outbox WHERE convert_from(body, 'UTF8')::jsonb -> 'data' ->> 'body' = $1",
            body)
    finally:
        await conn.close()
    assert sent_at is not None  # so no relay publishes it again once its lease ends
