"""The hot look-ups stay index probes on a young table (thousands of rows, never analyzed): under the
generic plan a prepared statement settles on after five runs, and under the custom plans before it.
That is what every service sees in its first minutes, before autovacuum's first ANALYZE.

The statements are the stores' own (captured from the real functions with a recording connection) and run
against copies of the real tables (``LIKE ... INCLUDING ALL``: same columns, keys and indexes) in a scratch
schema. Before the change intake's duplicate look-up (``channel = $1 AND (external_id = $2 OR message_id
= $3)``) read every ticket of the channel and the inbox prefetch every id the consumer ever processed:
both fail here (``Rows Removed by Filter`` in the thousands; the former prefetch under custom plans)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import pytest

from services.intake import store as intake_store
from shared.unit import Tx

pytestmark = pytest.mark.asyncio(loop_scope="session")

ROWS = 4000


class Recorder:
    """Stands in for an asyncpg connection: keeps the SQL and arguments, returns nothing."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    async def fetchrow(self, query: str, *args: Any) -> None:
        self.calls.append((query, args))

    async def fetch(self, query: str, *args: Any) -> list[Any]:
        self.calls.append((query, args))
        return []


def _literal(value: Any) -> str:
    """SQL literal for EXECUTE's arguments (EXPLAIN EXECUTE takes no bind parameters)."""
    if value is None:
        return "NULL"
    if isinstance(value, list):
        return "ARRAY[" + ", ".join(_literal(v) for v in value) + "]::text[]"
    return "'" + str(value).replace("'", "''") + "'"


async def _plan(conn: asyncpg.Connection, query: str, args: tuple[Any, ...], types: list[str]) -> dict:
    """EXPLAIN ANALYZE of ``query`` as a prepared statement, planned as the session's plan_cache_mode says."""
    name = f"p_{uuid.uuid4().hex[:8]}"
    await conn.execute(f"PREPARE {name}({', '.join(types)}) AS {query}")
    try:
        out = await conn.fetchval(
            f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE {name}({', '.join(_literal(a) for a in args)})")
    finally:
        await conn.execute(f"DEALLOCATE {name}")
    return json.loads(out)[0]["Plan"]


def _nodes(plan: dict) -> list[dict]:
    return [plan] + [n for child in plan.get("Plans", ()) for n in _nodes(child)]


def _removed(plan: dict) -> int:
    return sum(n.get("Rows Removed by Filter", 0) + n.get("Rows Removed by Index Recheck", 0) for n in _nodes(plan))


@pytest.fixture(params=["force_generic_plan", "force_custom_plan"])
async def scratch(request: pytest.FixtureRequest, run_env: dict[str, str], intake: Any) -> Any:
    """A connection planning as the param says, and a schema of empty copies of intake's tables (``intake``:
    its migrations made the originals)."""
    schema = f"plancheck_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(run_env["DATABASE_URL"])
    await conn.execute(f"SET plan_cache_mode = {request.param}")  # generic: no values known; custom: known
    await conn.execute(f"CREATE SCHEMA {schema}")
    await conn.execute(f"CREATE TABLE {schema}.tickets (LIKE intake.tickets INCLUDING ALL)")
    await conn.execute(f"CREATE TABLE {schema}.inbox (LIKE intake.inbox INCLUDING ALL)")
    try:
        yield conn, schema
    finally:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        await conn.close()


async def test_duplicate_lookup_probes_the_unique_keys(scratch: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    conn, schema = scratch
    await conn.execute(
        f"INSERT INTO {schema}.tickets (ticket_no, channel, external_id, message_id, status, customer_name, subject,"
        " received_at, created_at, updated_at, impact, urgency, customer_tier, caller)"
        " SELECT '20261203' || lpad(g::text, 6, '0'), 'web', CASE WHEN g % 2 = 0 THEN 'ext-' || g END,"
        " md5(g::text), 'new', 'x', 's', now(), now(), now(), 'single', 'normal', 'standard', 'c'"
        f" FROM generate_series(1, {ROWS}) g")
    rec = Recorder()
    monkeypatch.setattr(intake_store, "S", schema)
    await intake_store.find_duplicate(rec, channel="web", external_id="ext-10", message_id="absent")  # type: ignore[arg-type]
    query, _ = rec.calls[0]

    # both keys probed, nothing read beyond them, whatever the (missing) statistics say
    for ext, msg, want in (("ext-10", "absent", "20261203000010"), (None, uuid.uuid4().hex, None),
                           ("nope", "c4ca4238a0b923820dcc509a6f75849b", "20261203000001")):
        plan = await _plan(conn, query, ("web", ext, msg), ["text", "text", "text"])
        assert _removed(plan) == 0, json.dumps(plan)[:2000]
        scans = {n["Node Type"] for n in _nodes(plan)}
        assert not scans & {"Seq Scan", "Bitmap Heap Scan"}, scans
        found = await conn.fetchval(f"SELECT ticket_no FROM ({query}) q", "web", ext, msg)
        assert found == want

    # an external id match wins over a message id match on another ticket
    found = await conn.fetchval(f"SELECT ticket_no FROM ({query}) q", "web", "ext-4",
                                "8f14e45fceea167a5a36dedd4bea2543")  # md5('7'): ticket 7's message id
    assert found == "20261203000004"


async def test_inbox_prefetch_probes_each_batch_id(scratch: Any) -> None:
    conn, schema = scratch
    await conn.execute(f"INSERT INTO {schema}.inbox (consumer, message_id)"
                       f" SELECT 'events', md5(g::text) FROM generate_series(1, {ROWS * 3}) g")
    rec = Recorder()
    ids = [uuid.uuid4().hex for _ in range(31)] + ["c4ca4238a0b923820dcc509a6f75849b"]  # one seen before
    tx = Tx(rec, schema, batch_ids=ids)  # type: ignore[arg-type]
    await tx._prefetch("events")
    query, args = rec.calls[0]
    plan = await _plan(conn, query, args, ["text", "text[]"])
    assert _removed(plan) == 0, json.dumps(plan)[:2000]
    assert "Seq Scan" not in {n["Node Type"] for n in _nodes(plan)}
    assert {r["message_id"] for r in await conn.fetch(query, *args)} == {"c4ca4238a0b923820dcc509a6f75849b"}
