"""The hot look-ups stay index probes on a young table (thousands of rows, never analyzed): under the
generic plan a prepared statement settles on after five runs, and under the custom plans before it.
That is what every service sees in its first minutes, before autovacuum's first ANALYZE.

The statements are the stores' own (captured from the real functions with a recording connection) and run
against copies of the real tables (``LIKE ... INCLUDING ALL``: same columns, keys and indexes) in a scratch
schema. Before the change intake's duplicate look-up (``channel = $1 AND (external_id = $2 OR message_id
= $3)``) read every ticket of the channel and the inbox prefetch every id the consumer ever processed:
both fail here (``Rows Removed by Filter`` in the thousands; the former prefetch under custom plans)."""

from __future__ import annotations

import contextlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from services.intake import store as intake_store
from shared.envelope import CloudEvent
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


def _element(value: Any) -> str:
    if value is None:
        return "NULL"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _literal(value: Any) -> str:
    """SQL literal for EXECUTE's arguments (EXPLAIN EXECUTE takes no bind parameters); an array is an
    untyped literal, which takes the prepared parameter's type (text[], int[], jsonb[] ...)."""
    if value is None:
        return "NULL"
    if isinstance(value, list):
        value = "{" + ",".join(_element(v) for v in value) + "}"
    return "'" + str(value).replace("'", "''") + "'"


def _read(plan: dict, table: str) -> int:
    """Rows the plan read from ``table`` (kept or filtered out, over every loop)."""
    return sum(int((n.get("Actual Rows", 0) + n.get("Rows Removed by Filter", 0)
                    + n.get("Rows Removed by Index Recheck", 0)) * n.get("Actual Loops", 1))
               for n in _nodes(plan) if n.get("Relation Name") == table)


async def _prepare(conn: asyncpg.Connection, query: str, types: list[str], *,
                   run_with: tuple[Any, ...] | None = None) -> str:
    """``query`` as a prepared statement; ``run_with``: executed once now, so that under the generic plan
    mode its plan is made (and kept) on the table as it is now."""
    name = f"p_{uuid.uuid4().hex[:8]}"
    await conn.execute(f"PREPARE {name}({', '.join(types)}) AS {query}")
    if run_with is not None:
        await conn.execute(f"EXECUTE {name}({', '.join(_literal(a) for a in run_with)})")
    return name


async def _explain(conn: asyncpg.Connection, name: str, args: tuple[Any, ...]) -> dict:
    out = await conn.fetchval(
        f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE {name}({', '.join(_literal(a) for a in args)})")
    return json.loads(out)[0]["Plan"]


async def _plan(conn: asyncpg.Connection, query: str, args: tuple[Any, ...], types: list[str]) -> dict:
    """EXPLAIN ANALYZE of ``query`` as a prepared statement, planned as the session's plan_cache_mode says."""
    name = await _prepare(conn, query, types)
    try:
        return await _explain(conn, name, args)
    finally:
        await conn.execute(f"DEALLOCATE {name}")


def _nodes(plan: dict) -> list[dict]:
    return [plan] + [n for child in plan.get("Plans", ()) for n in _nodes(child)]


def _removed(plan: dict) -> int:
    return sum(n.get("Rows Removed by Filter", 0) + n.get("Rows Removed by Index Recheck", 0) for n in _nodes(plan))


@pytest.fixture(params=[(mode, order) for mode in ("force_generic_plan", "force_custom_plan")
                        for order in ("as_migrated", "reversed")], ids=lambda p: f"{p[0]}-{p[1]}")
async def scratch(request: pytest.FixtureRequest, run_env: dict[str, str], intake: Any) -> Any:
    """A connection planning as the param says, and a schema of empty copies of intake's tables (``intake``:
    its migrations made the originals). The copies' indexes are intake's own, created in the migrations'
    order or the reverse: where two indexes cost the same the planner keeps the first it considered, so a
    plan that holds only in one order is luck, not design."""
    mode, order = request.param
    schema = f"plancheck_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(run_env["DATABASE_URL"])
    await conn.execute(f"SET plan_cache_mode = {mode}")  # generic: no values known; custom: known
    await conn.execute(f"CREATE SCHEMA {schema}")
    for table in ("tickets", "inbox", "timeline", "contact_reads"):
        await conn.execute(f"CREATE TABLE {schema}.{table} (LIKE intake.{table} INCLUDING ALL EXCLUDING INDEXES)")
        defs = [r["indexdef"] for r in await conn.fetch(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'intake' AND tablename = $1"
            " ORDER BY (SELECT oid FROM pg_class WHERE relname = indexname"
            "           AND relnamespace = 'intake'::regnamespace)", table)]
        for d in (defs if order == "as_migrated" else defs[::-1]):
            await conn.execute(d.replace(" ON intake.", f" ON {schema}."))  # names are per schema
    try:
        yield conn, schema
    finally:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        await conn.close()


async def test_duplicate_lookup_probes_the_unique_keys(scratch: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    conn, schema = scratch
    rec = Recorder()
    monkeypatch.setattr(intake_store, "S", schema)
    await intake_store.find_duplicate(rec, channel="web", external_id="ext-10", message_id="absent")  # type: ignore[arg-type]
    query, _ = rec.calls[0]
    types = ["text", "text", "text"]
    # a fresh deployment prepares the statement on the empty table; the generic plan made then is kept
    # while the table grows (before the change it read the external id through the message-id key)
    early = await _prepare(conn, query, types, run_with=("web", "ext-0", "none"))
    await conn.execute(
        f"INSERT INTO {schema}.tickets (ticket_no, channel, external_id, message_id, status, customer_name, subject,"
        " received_at, created_at, updated_at, impact, urgency, customer_tier, caller)"
        " SELECT '20261203' || lpad(g::text, 6, '0'), 'web', 'ext-' || g,"
        " CASE WHEN g % 2 = 1 THEN md5(g::text) END, 'new', 'x', 's', now(), now(), now(), 'single', 'normal',"
        f" 'standard', 'c' FROM generate_series(1, {ROWS}) g")

    # both keys probed, nothing read beyond them, whatever the (missing) statistics say
    for ext, msg, want in (("ext-10", "absent", "20261203000010"), (None, uuid.uuid4().hex, None),
                           ("nope", "c4ca4238a0b923820dcc509a6f75849b", "20261203000001"),
                           ("absent", "absent", None)):
        for plan in (await _explain(conn, early, ("web", ext, msg)), await _plan(conn, query, ("web", ext, msg), types)):
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
    rec = Recorder()
    ids = [uuid.uuid4().hex for _ in range(31)] + ["c4ca4238a0b923820dcc509a6f75849b"]  # one seen before
    tx = Tx(rec, schema, batch_ids=ids)  # type: ignore[arg-type]
    await tx._prefetch("events")
    query, args = rec.calls[0]
    early = await _prepare(conn, query, ["text", "text[]"], run_with=args)  # on the empty inbox
    await conn.execute(f"INSERT INTO {schema}.inbox (consumer, message_id)"
                       f" SELECT CASE WHEN g % 3 = 0 THEN 'other' ELSE 'events' END, md5(g::text)"
                       f" FROM generate_series(1, {ROWS * 3}) g")
    for plan in (await _explain(conn, early, args), await _plan(conn, query, args, ["text", "text[]"])):
        assert _read(plan, "inbox") <= len(ids), json.dumps(plan)[:2000]  # one probe per id, at most
    assert {r["message_id"] for r in await conn.fetch(query, *args)} == {"c4ca4238a0b923820dcc509a6f75849b"}


async def test_timeline_batch_probes_each_events_ticket(scratch: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    conn, schema = scratch
    rec = Recorder()
    monkeypatch.setattr(intake_store, "S", schema)
    at = datetime(2026, 12, 3, 9, tzinfo=UTC)

    def batch(tag: str) -> list[CloudEvent]:
        return [CloudEvent(id=f"{tag}-{k}", source="sla", type="sla.started", time=at,
                           data={"ticket_no": f"20261203{k * 97:06d}", "seq": 1, "note": 'a "quoted" \\ value'})
                for k in range(1, 33)]

    with contextlib.suppress(Exception):  # the Recorder inserts nothing, so the unknown-ticket check raises
        await intake_store.record_events(rec, batch("warm"))  # type: ignore[arg-type]
    query, args = rec.calls[0]
    types = ["text[]", "text[]", "text[]", "text[]", "int[]", "timestamptz[]", "jsonb[]"]
    early = await _prepare(conn, query, types, run_with=args)  # on the empty tables
    await conn.execute(
        f"INSERT INTO {schema}.tickets (ticket_no, channel, external_id, status, customer_name, subject,"
        " received_at, created_at, updated_at, impact, urgency, customer_tier, caller)"
        " SELECT '20261203' || lpad(g::text, 6, '0'), 'web', 'ext-' || g, 'new', 'x', 's', now(), now(), now(),"
        f" 'single', 'normal', 'standard', 'c' FROM generate_series(1, {ROWS}) g")
    for tag in ("early", "fresh"):
        rec.calls.clear()
        with contextlib.suppress(Exception):
            await intake_store.record_events(rec, batch(tag))  # type: ignore[arg-type]
        _, args = rec.calls[0]
        plan = (await _explain(conn, early, args) if tag == "early" else await _plan(conn, query, args, types))
        assert _read(plan, "tickets") <= 32, json.dumps(plan)[:2000]  # one probe per event, at most
    got = await conn.fetchval(f"SELECT count(*) FROM {schema}.timeline WHERE event_id LIKE 'fresh-%'")
    assert got == sum(1 for k in range(1, 33) if k * 97 <= ROWS)  # the events about known tickets only


async def test_contacts_lookup_probes_each_ticket(scratch: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """``store.read_contacts`` (a contacts lookup's tickets, each read recorded): one probe per ticket asked,
    not a scan of the table."""
    conn, schema = scratch
    rec = Recorder()
    monkeypatch.setattr(intake_store, "S", schema)
    wanted = [f"20261203{k * 37:06d}" for k in range(1, 41)]
    await intake_store.read_contacts(rec, caller="notify", ticket_nos=wanted)  # type: ignore[arg-type]
    query, args = rec.calls[0]
    early = await _prepare(conn, query, ["text[]", "text"], run_with=args)  # on the empty table
    await conn.execute(
        f"INSERT INTO {schema}.tickets (ticket_no, channel, external_id, status, customer_name, subject,"
        " received_at, created_at, updated_at, impact, urgency, customer_tier, caller)"
        " SELECT '20261203' || lpad(g::text, 6, '0'), 'web', 'ext-' || g, 'new', 'x', 's', now(), now(), now(),"
        f" 'single', 'normal', 'standard', 'c' FROM generate_series(1, {ROWS}) g")
    for plan in (await _explain(conn, early, args), await _plan(conn, query, args, ["text[]", "text"])):
        assert _read(plan, "tickets") <= len(wanted), json.dumps(plan)[:2000]  # one probe per ticket, at most
    assert sorted(r["ticket_no"] for r in await conn.fetch(query, *args)) == wanted  # all 40 exist
    recorded = await conn.fetch(f"SELECT caller, ticket_no FROM {schema}.contact_reads WHERE caller = 'notify'")
    assert len(recorded) == 3 * len(wanted)  # every read recorded: two EXPLAIN ANALYZE runs and the fetch
