"""The unit of work (``rt.unit``) on the real broker and database: a batch of deliveries is one
transaction whose inbox ids, sequence increments and outbox rows are written together; a poison
message, a duplicate inside the batch, a nested use case and a rollback each leave every message's
effect — state row, inbox row, outbox event, per-ticket seq, after-commit effect — exactly once."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path

import orjson
import pytest
from prometheus_client import REGISTRY

from shared import topology
from shared.consumer import subscribe
from shared.errors import DomainError
from shared.events import EventData
from shared.runtime import Runtime
from shared.settings import Settings
from shared.unit import Unit, Within

SERVICE = "uowtest"


class Noted(EventData):
    type = "test.noted"
    body: str


class Echoed(EventData):
    type = "test.echoed"
    body: str


@pytest.fixture
async def rt(run_env, drop_db_at_end, tmp_path: Path):  # noqa: ANN001, ANN201
    (tmp_path / "0001_effects.sql").write_text("CREATE TABLE effects (body text PRIMARY KEY, n int DEFAULT 1);")
    runtime = Runtime(SERVICE, Settings(), tmp_path, outbox=False)  # no relay: the outbox rows stay to be counted
    yield runtime


async def note(rt: Runtime, body: str, message_id: str, *, within: Within, counted: list[str],
               duplicates: list[str] | None = None) -> str:
    """The use case under test: one effect row, one event (ticket ``T-<body>``), one after-commit count."""
    async with rt.unit(consumer="test.notes", message_id=message_id, within=within) as u:
        if u.duplicate:
            u.after_commit(lambda: (duplicates if duplicates is not None else []).append(body))
            return "duplicate"
        await u.conn.execute(f"INSERT INTO {SERVICE}.effects (body) VALUES ($1)", body)  # twice would fail
        u.emit(f"T-{body}", Noted(body=body))
        u.after_commit(lambda: counted.append(body))
    return "applied"


async def echo(u: Unit, rt: Runtime, body: str, message_id: str) -> Unit:
    """A use case nested in its caller's unit: another consumer's claim, another event, same transaction."""
    async with rt.unit(consumer="test.echo", message_id=message_id, within=u) as inner:
        if not inner.duplicate:
            inner.emit(f"T-{body}", Echoed(body=body))
        return inner


async def table(rt: Runtime) -> dict[str, object]:
    async with rt.pool.acquire() as conn:
        effects = [r["body"] for r in await conn.fetch(f"SELECT body FROM {SERVICE}.effects")]
        outbox = await conn.fetch(f"SELECT ticket_no, routing_key, body FROM {SERVICE}.outbox")
        seqs = {r["ticket_no"]: r["seq"] for r in await conn.fetch(f"SELECT * FROM {SERVICE}.event_seq")}
        inbox = [r["message_id"] for r in await conn.fetch(f"SELECT message_id FROM {SERVICE}.inbox")]
    return {"effects": effects, "outbox": outbox, "seqs": seqs, "inbox": inbox}


async def clear(rt: Runtime) -> None:
    async with rt.pool.acquire() as conn:
        for t in ("effects", "outbox", "event_seq", "inbox"):
            await conn.execute(f"DELETE FROM {SERVICE}.{t}")


def batches(queue: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("helpdesk_consumer_batches_total",
                                     {"service": SERVICE, "queue": queue, "outcome": outcome}) or 0.0


async def settle(counted: list[str], want: int) -> None:
    for _ in range(200):
        if len(counted) >= want:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # anything extra would show up now


async def test_a_batch_with_a_poison_message_and_a_duplicate_applies_each_message_once(
        rt, publisher, dlq_tap):  # noqa: ANN001
    name = f"uow_{uuid.uuid4().hex[:8]}"
    queue = topology.quorum_queue(f"test.{name}", routing_key=f"{name}.#", delivery_limit=3)
    counted: list[str] = []
    duplicates: list[str] = []
    gate = asyncio.Event()

    async def handler(msg, tx) -> None:  # noqa: ANN001
        body = msg.body.decode()
        await gate.wait()  # hold the first deliveries until the rest arrived: they form batches
        if body == "bad":
            raise DomainError("body", "not wanted")
        await note(rt, body, msg.raw_message.message_id, within=tx, counted=counted, duplicates=duplicates)

    subscribe(rt, queue, topology.INTAKE, handler, batch=rt.batching())
    async with rt.running():
        await clear(rt)
        committed0, rolled0 = batches(queue.name, "committed"), batches(queue.name, "rolled_back")
        bodies = [f"m{i}" for i in range(60)]
        for i, body in enumerate(bodies):
            await publisher.publish("helpdesk.intake", f"{name}.x", body.encode(), message_id=f"{name}-{body}")
            if i == 30:
                await publisher.publish("helpdesk.intake", f"{name}.x", b"bad", message_id=f"{name}-bad")
            if i == 10:  # the same message again, inside the same batch
                await publisher.publish("helpdesk.intake", f"{name}.x", body.encode(), message_id=f"{name}-{body}")
        await asyncio.sleep(0.5)
        gate.set()
        [dead] = await dlq_tap.wait_messages(lambda m: m.message_id == f"{name}-bad", timeout=30)
        assert dead.headers["x-helpdesk-reason"] == "body: not wanted"
        await settle(counted, len(bodies))
        got = await table(rt)
        assert sorted(got["effects"]) == sorted(bodies)  # the primary key would have refused a second
        assert sorted(counted) == sorted(bodies)  # after-commit: once each, none from the rolled-back batch
        assert Counter(r["ticket_no"] for r in got["outbox"]) == Counter(f"T-{b}" for b in bodies)
        assert got["seqs"] == {f"T-{b}": 1 for b in bodies}
        assert sorted(got["inbox"]) == sorted(f"{name}-{b}" for b in bodies)
        assert duplicates == ["m10"]  # its copy: seen within its batch (or alone, after a rollback)
        assert batches(queue.name, "committed") > committed0
        assert batches(queue.name, "rolled_back") == rolled0 + 1  # only the poison message's batch

        # every message again, after they were committed: each is a duplicate, nothing changes
        gate.clear()
        for body in bodies:
            await publisher.publish("helpdesk.intake", f"{name}.x", body.encode(), message_id=f"{name}-{body}")
        await asyncio.sleep(0.3)
        gate.set()
        for _ in range(100):
            if len(duplicates) >= len(bodies) + 1:
                break
            await asyncio.sleep(0.05)
        assert sorted(duplicates) == sorted([*bodies, "m10"])  # found by the batch's one inbox read
        assert sorted(counted) == sorted(bodies)
        assert await table(rt) == got


async def test_a_nested_use_case_joins_its_callers_transaction_and_rolls_back_with_it(rt):  # noqa: ANN001
    async with rt.running():
        await clear(rt)
        counted: list[str] = []
        async with rt.unit(consumer="test.notes", message_id="n1") as outer:
            assert outer.owner and not outer.duplicate
            await outer.conn.execute(f"INSERT INTO {SERVICE}.effects (body) VALUES ('n1')")
            outer.emit("T-n1", Noted(body="n1"))
            inner = await echo(outer, rt, "n1", "n1")
            assert not inner.owner and inner.conn is outer.conn  # told, not guessed: it does not commit
            again = await echo(outer, rt, "n1", "n1")
            assert again.duplicate  # the same claim twice in one transaction
        got = await table(rt)
        assert got["effects"] == ["n1"]
        assert sorted(r["routing_key"] for r in got["outbox"]) == ["test.echoed", "test.noted"]
        assert got["seqs"] == {"T-n1": 2}
        seqs = sorted(orjson.loads(r["body"])["data"]["seq"] for r in got["outbox"])
        assert seqs == [1, 2]

        with pytest.raises(RuntimeError):
            async with rt.unit(consumer="test.notes", message_id="n2") as outer:
                await outer.conn.execute(f"INSERT INTO {SERVICE}.effects (body) VALUES ('n2')")
                await echo(outer, rt, "n2", "n2")
                outer.after_commit(lambda: counted.append("n2"))
                raise RuntimeError("the caller fails after the nested use case")
        assert await table(rt) == got  # the nested unit's claim and event went with the rollback
        assert counted == []


async def test_a_rolled_back_unit_leaves_nothing_and_its_retry_applies_once(rt):  # noqa: ANN001
    async with rt.running():
        await clear(rt)
        counted: list[str] = []
        with pytest.raises(DomainError):
            async with rt.unit(consumer="test.notes", message_id="r1") as u:
                await u.conn.execute(f"INSERT INTO {SERVICE}.effects (body) VALUES ('r1')")
                u.emit("T-r1", Noted(body="r1"))
                u.after_commit(lambda: counted.append("r1"))
                raise DomainError("body", "fails after its writes")
        assert await table(rt) == {"effects": [], "outbox": [], "seqs": {}, "inbox": []}
        assert counted == []
        assert await note(rt, "r1", "r1", within=None, counted=counted) == "applied"
        assert await note(rt, "r1", "r1", within=None, counted=counted) == "duplicate"
        got = await table(rt)
        assert got["effects"] == ["r1"] and got["inbox"] == ["r1"] and got["seqs"] == {"T-r1": 1}
        assert len(got["outbox"]) == 1 and counted == ["r1"]


async def test_each_tickets_events_are_numbered_in_order_and_their_bodies_are_the_envelopes_own(rt):  # noqa: ANN001
    """One flush writes the seq increments and the outbox rows in one statement, splicing each event's
    seq into its body: the numbers run on across transactions, per ticket, in emit order, and every
    body is byte for byte the envelope serialised with its seq (what a consumer parses)."""
    from shared.envelope import CloudEvent

    async with rt.running():
        await clear(rt)
        async with rt.unit() as u:
            for i, t in enumerate(["T-a", "T-b", "T-a", "T-a", "T-b"]):
                u.emit(t, Noted(body=f"1-{i}"))
        async with rt.unit() as u:
            u.emit("T-b", Noted(body='2-0 "seq":-7340032119 a string that looks like the mark'))
            u.emit("T-a", Noted(body="2-1"))
            tx = u.tx
        async with rt.pool.acquire() as conn:
            rows = await conn.fetch(f"SELECT id, ticket_no, body FROM {SERVICE}.outbox ORDER BY id")
            seqs = {r["ticket_no"]: r["seq"] for r in await conn.fetch(f"SELECT * FROM {SERVICE}.event_seq")}
    got = [(r["ticket_no"], orjson.loads(r["body"])["data"]["body"], orjson.loads(r["body"])["data"]["seq"])
           for r in rows]
    assert got == [("T-a", "1-0", 1), ("T-b", "1-1", 1), ("T-a", "1-2", 2), ("T-a", "1-3", 3), ("T-b", "1-4", 2),
                   ("T-b", '2-0 "seq":-7340032119 a string that looks like the mark', 3), ("T-a", "2-1", 4)]
    assert seqs == {"T-a": 4, "T-b": 3}
    for r in rows:
        event = CloudEvent.from_bytes(r["body"])
        assert bytes(r["body"]) == event.to_bytes()  # nothing but the envelope's own serialisation
    assert [e.data["seq"] for e in tx.envelopes] == [3, 4]  # what the hook (intake's timeline) is given
