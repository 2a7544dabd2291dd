"""Notification's batch writes (``store.start_attempts``, ``store.record_outcomes``): a batch mixing all
three outcomes leaves every delivery row and attempt row as each outcome means (sent, retry, failed:
spelled out below) and exactly as the same outcomes written one at a time; a row the batch's ``ctid``
probe misses (changed under it) is still written, by id. Real Postgres, notification's own migrations,
in a scratch schema."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from services.notification import store
from shared import db

pytestmark = pytest.mark.asyncio(loop_scope="session")

NOW = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)
COLUMNS = ("status", "attempts", "last_attempt_at", "next_attempt_at", "held", "last_error", "recipient_masked",
           "sent_at", "failed_at")


@pytest.fixture
async def schema(run_env: dict[str, str], intake: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A scratch schema made by notification's migrations (``intake``: it creates the database)."""
    name = f"outcomes_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(run_env["DATABASE_URL"])
    await conn.execute(f"CREATE SCHEMA {name}")
    await db.migrate(conn, name, Path(store.__file__).parent / "migrations")
    monkeypatch.setattr(store, "S", name)
    try:
        yield conn, name
    finally:
        await conn.execute(f"DROP SCHEMA {name} CASCADE")
        await conn.close()


async def _deliveries(conn: asyncpg.Connection, schema: str, n: int, tag: str) -> list[int]:
    return [r["id"] for r in await conn.fetch(
        f"INSERT INTO {schema}.deliveries (event_id, event_type, ticket_no, recipient, rate_key, channel, template,"
        " context, next_attempt_at, held, last_error, recipient_masked)"
        " SELECT $1 || g, 'ticket.routed', '20261203000001', 'customer', 'customer:1', 'sms', 'ticket_received',"
        " '{}', $2, 'rate_limit', 'earlier', 'old-mask' FROM generate_series(1, $3) g RETURNING id",
        tag, NOW - timedelta(minutes=1), n)]


def _outcomes(ids: list[int], attempts: dict[int, int]) -> list[store.Outcome]:
    kinds = ["sent", "retry", "failed", "sent", "retry", "failed"]
    out = []
    for k, (i, kind) in enumerate(zip(ids, kinds, strict=True)):
        masked = None if kind != "sent" and k >= 3 else f"138****{k:04d}"
        out.append(store.Outcome(i, attempts[i], kind, NOW, masked, 40 + k,
                                 error=None if kind == "sent" else f"gateway said {k}",
                                 next_at=NOW + timedelta(minutes=5) if kind == "retry" else None))
    return out


async def _rows(conn: asyncpg.Connection, schema: str, ids: list[int]) -> list[tuple[Any, ...]]:
    deliveries = await conn.fetch(f"SELECT {', '.join(COLUMNS)} FROM {schema}.deliveries WHERE id = ANY($1)"
                                  " ORDER BY id", ids)
    attempts = await conn.fetch(f"SELECT attempt, at, outcome, error, duration_ms FROM {schema}.attempts"
                                " WHERE delivery_id = ANY($1) ORDER BY delivery_id", ids)
    return [tuple(d) + tuple(a) for d, a in zip(deliveries, attempts, strict=True)]


def _expected(outcomes: list[store.Outcome], lease: datetime) -> list[tuple[Any, ...]]:
    """What each outcome means for its delivery (COLUMNS) and its attempt row, from rows that were
    leased at NOW (held, last error and masked recipient from before: 'rate_limit', 'earlier', 'old-mask')."""
    out = []
    for o in outcomes:
        masked = o.recipient_masked or "old-mask"
        if o.outcome == "sent":
            row = ("sent", 1, NOW, lease, None, None, o.recipient_masked, NOW, None)
        elif o.outcome == "retry":
            row = ("pending", 1, NOW, o.next_at, "retry", o.error, masked, None, None)
        else:
            row = ("failed", 1, NOW, lease, None, o.error, masked, None, NOW)
        out.append(row + (o.attempt, NOW, o.outcome, o.error, o.duration_ms))
    return out


async def test_the_batch_writes_what_each_outcome_means_and_what_one_at_a_time_writes(schema: Any) -> None:
    conn, name = schema
    one, many = await _deliveries(conn, name, 6, "one-"), await _deliveries(conn, name, 6, "many-")
    lease = NOW + timedelta(minutes=2)
    async with conn.transaction():
        attempts_one = {i: (await store.start_attempts(conn, ids=[i], now=NOW, lease_until=lease))[i] for i in one}
        attempts_many = await store.start_attempts(conn, ids=many, now=NOW, lease_until=lease)
    assert attempts_many == {i: 1 for i in many}
    assert attempts_one == {i: 1 for i in one}
    async with conn.transaction():
        for o in _outcomes(one, attempts_one):
            await store.record_outcomes(conn, [o])
        await store.record_outcomes(conn, _outcomes(many, attempts_many))
    assert await _rows(conn, name, many) == _expected(_outcomes(many, attempts_many), lease)
    assert await _rows(conn, name, many) == await _rows(conn, name, one)
    statuses = [r[0] for r in await _rows(conn, name, many)]
    assert statuses == ["sent", "pending", "failed", "sent", "pending", "failed"]


async def test_a_row_the_ctid_probe_misses_is_written_by_id(schema: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    conn, name = schema
    ids = await _deliveries(conn, name, 6, "moved-")
    attempts = await store.start_attempts(conn, ids=ids, now=NOW, lease_until=NOW + timedelta(minutes=2))
    real_fetch = asyncpg.Connection.fetch

    async def fetch_then_lose_one(self: asyncpg.Connection, query: str, *args: Any) -> list[Any]:
        rows = await real_fetch(self, query, *args)
        if query.lstrip().startswith(f"UPDATE {name}.deliveries d SET") and "d.ctid = x.tid" in query:
            # as if its row had moved under the probe: the batch update did not touch it
            await self.execute(f"UPDATE {name}.deliveries d SET ({', '.join(COLUMNS)}) ="
                               f" (SELECT {', '.join(COLUMNS)} FROM keep) WHERE d.id = $1", ids[1])
            return [r for r in rows if r["id"] != ids[1]]
        return rows

    monkeypatch.setattr(asyncpg.Connection, "fetch", fetch_then_lose_one)
    async with conn.transaction():
        # the lost row as it was before the batch: put back after the batch update, so only the by-id
        # path can write it
        await conn.execute(f"CREATE TEMP TABLE keep AS SELECT * FROM {name}.deliveries WHERE id = $1", ids[1])
        await store.record_outcomes(conn, _outcomes(ids, attempts))
    row = await conn.fetchrow(f"SELECT held, next_attempt_at, last_error FROM {name}.deliveries WHERE id = $1", ids[1])
    assert (row["held"], row["next_attempt_at"], row["last_error"]) == ("retry", NOW + timedelta(minutes=5),
                                                                        "gateway said 1")


async def test_the_claim_says_when_the_earliest_other_pending_row_comes_due(schema: Any) -> None:
    """``lock_due`` claims the due rows and, in the same statement, reads when the worker must wake next:
    the earliest pending row it did not claim (a held or leased one, or a due one beyond its limit)."""
    conn, name = schema
    ids = await _deliveries(conn, name, 4, "due")
    times = [NOW - timedelta(minutes=2), NOW - timedelta(minutes=1), NOW + timedelta(minutes=5), NOW - timedelta(hours=1)]
    for i, at in zip(ids, times, strict=True):
        await conn.execute(f"UPDATE {name}.deliveries SET next_attempt_at = $2 WHERE id = $1", i, at)
    await conn.execute(f"UPDATE {name}.deliveries SET status = 'sent' WHERE id = $1", ids[3])  # not pending
    async with conn.transaction():
        rows, due = await store.lock_due(conn, now=NOW, limit=1)
        assert [r["id"] for r in rows] == [ids[0]] and due == times[1]
        assert set(rows[0]) == set(store._COLUMNS)  # the row as before, nothing of the wake-up read in it
    async with conn.transaction():
        rows, due = await store.lock_due(conn, now=NOW, limit=10)
        assert [r["id"] for r in rows] == ids[:2] and due == times[2]
    await conn.execute(f"UPDATE {name}.deliveries SET status = 'sent' WHERE id = ANY($1)", ids)
    async with conn.transaction():
        assert await store.lock_due(conn, now=NOW, limit=10) == ([], None)


async def test_a_worker_pass_sleeps_until_the_earliest_moment_its_claims_and_outcomes_left() -> None:
    """The worker's next wake-up comes from its pass (claims, holds, retries written), with no statement
    of its own; the next pass starts afresh."""
    from types import SimpleNamespace

    from services.notification.worker import Worker

    w = Worker.__new__(Worker)
    w._due, w.clock, w.stopping, w._next_sweep = None, lambda: NOW, False, float("inf")
    w.opts = SimpleNamespace(worker_batch=10)  # type: ignore[assignment]

    async def send_due() -> int:  # what a claim (the other rows, a lease) and a retry outcome note
        for s in (30, 3, None, 7):
            w._due_at(None if s is None else NOW + timedelta(seconds=s))
        return 1
    w.send_due = send_due  # type: ignore[method-assign]
    assert await w.pass_once() == 3.0

    async def nothing() -> int:
        return 0
    w.send_due = nothing  # type: ignore[method-assign]
    assert await w.pass_once() is None  # nothing pending: sleep the poll interval


async def test_a_claim_notes_the_next_unclaimed_row_and_its_holds_for_the_wake_up(
        schema: Any, run_env: dict[str, str]) -> None:
    """The worker's claim on the real schema: what it holds back (the recipient's rate limit) and the
    next pending row it did not claim are what its pass then sleeps until — the earliest of them."""
    from types import SimpleNamespace

    from services.notification.config import RateLimit
    from services.notification.worker import Worker

    conn, name = schema
    ids = await _deliveries(conn, name, 3, "wake")  # one recipient, rate key customer:1
    later = NOW + timedelta(minutes=5)
    for i, at in zip(ids, [NOW - timedelta(minutes=2), NOW - timedelta(minutes=1), later], strict=True):
        await conn.execute(f"UPDATE {name}.deliveries SET next_attempt_at = $2 WHERE id = $1", i, at)
    pool = await asyncpg.create_pool(run_env["DATABASE_URL"], min_size=1, max_size=1)
    try:
        w = Worker.__new__(Worker)
        w.rt = SimpleNamespace(pool=pool)  # type: ignore[assignment]
        w.cfg = SimpleNamespace(rate_limit=RateLimit(customer=1, window_s=600))  # type: ignore[assignment]
        w.opts = SimpleNamespace(worker_batch=10, lease_s=60)  # type: ignore[assignment]
        w._due = None
        ready, claimed = await w._claim(NOW)
        assert [r["id"] for r in ready] == [ids[0]] and claimed == 2
        held = await conn.fetchval(f"SELECT next_attempt_at FROM {name}.deliveries WHERE id = $1", ids[1])
        assert held > later and w._due == later  # the unclaimed row comes due first
        await conn.execute(f"UPDATE {name}.deliveries SET status = 'sent' WHERE id = ANY($1)", [ids[0], ids[2]])
        await conn.execute(f"UPDATE {name}.deliveries SET next_attempt_at = $2 WHERE id = $1", ids[1], NOW)
        w._due = None
        ready, claimed = await w._claim(NOW)  # the limit still holds it: the hold is the next moment
        held = await conn.fetchval(f"SELECT next_attempt_at FROM {name}.deliveries WHERE id = $1", ids[1])
        assert ready == [] and claimed == 1 and held > NOW and w._due == held
    finally:
        await pool.close()
