"""Batched consumption on the real broker and database: deliveries waiting together commit in one
transaction; a batch with a poison message rolls back and each message is handled again alone, so the
poison one is dead-lettered and every other one is applied exactly once."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from faststream.rabbit import RabbitBroker
from prometheus_client import REGISTRY

from shared import batching, topology
from shared.batching import Batching, after_commit
from shared.consumer import subscribe
from shared.errors import DomainError

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


async def test_batch_commits_together_and_a_poison_message_falls_back_to_one_by_one(run_env, publisher, dlq_tap):
    name = f"batch_{uuid.uuid4().hex[:8]}"
    pool = await asyncpg.create_pool(ADMIN_DSN, min_size=1, max_size=3)
    await pool.execute(f"CREATE TABLE public.{name} (body text PRIMARY KEY)")
    counted: list[str] = []
    gate = asyncio.Event()
    broker = RabbitBroker(run_env["AMQP_URL"])
    queue = topology.quorum_queue(f"test.{name}", routing_key=f"{name}.#", delivery_limit=3)

    async def handler(msg) -> None:
        body = msg.body.decode()
        await gate.wait()  # hold the first deliveries until the rest have arrived: they form batches
        if body == "bad":
            raise DomainError("body", "not wanted")
        db = batching.current_pool() or pool
        async with db.acquire() as conn, conn.transaction():  # joins the batch's transaction in a batch
            await conn.execute(f"INSERT INTO public.{name} (body) VALUES ($1)", body)  # a 2nd insert would fail
        after_commit(lambda: counted.append(body))

    subscribe(broker, queue, topology.INTAKE, handler, service="test",
              batch=Batching(lambda: pool, max_size=16, parallel=1))
    await broker.connect()
    await topology.declare_all(broker)
    await broker.start()
    def batches(outcome: str) -> float:
        return REGISTRY.get_sample_value("helpdesk_consumer_batches_total",
                                         {"service": "test", "queue": queue.name, "outcome": outcome}) or 0.0

    committed0, rolled0 = batches("committed"), batches("rolled_back")
    try:
        bodies = [f"m{i}" for i in range(60)]
        for i, body in enumerate(bodies):
            await publisher.publish("helpdesk.intake", f"{name}.x", body.encode())
            if i == 30:
                await publisher.publish("helpdesk.intake", f"{name}.x", b"bad", message_id=f"{name}-bad")
        await asyncio.sleep(0.5)
        gate.set()
        [dead] = await dlq_tap.wait_messages(lambda m: m.message_id == f"{name}-bad", timeout=30)
        assert dead.headers["x-helpdesk-reason"] == "body: not wanted"
        for _ in range(100):
            if len(counted) >= len(bodies):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)
        rows = [r["body"] for r in await pool.fetch(f"SELECT body FROM public.{name}")]
        assert sorted(rows) == sorted(bodies)  # each applied once (the primary key forbids twice)
        assert sorted(counted) == sorted(bodies)  # after-commit effects: once each, none from the rollback
        assert batches("committed") > committed0
        assert batches("rolled_back") == rolled0 + 1
    finally:
        await broker.stop()
        await pool.execute(f"DROP TABLE IF EXISTS public.{name}")
        await pool.close()


async def test_nested_transaction_joins_the_batch_and_rolls_back_with_it():
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute("CREATE TEMP TABLE t (x int)")
        bp = batching.BatchPool(conn)
        try:
            async with conn.transaction():
                async with bp.acquire() as c, c.transaction():
                    await c.execute("INSERT INTO t VALUES (1)")
                assert await bp.fetchval("SELECT count(*) FROM t") == 1  # not committed on its own
                raise RuntimeError("a later message of the batch fails")
        except RuntimeError:
            pass
        assert await conn.fetchval("SELECT count(*) FROM t") == 0
    finally:
        await conn.close()


def test_after_commit_outside_a_batch_runs_at_once():
    ran: list[int] = []
    after_commit(lambda: ran.append(1))
    assert ran == [1]
