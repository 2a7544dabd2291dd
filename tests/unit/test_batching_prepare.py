"""A batch's ``prepare`` (``Batching(prepare=…)``) runs once, with every delivery of the batch and the
batch's own transaction, before any handler; if it fails the batch rolls back and each message is
handled alone (where no prepare runs). The services whose hot queues read per batch have it wired."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from shared.batching import Batcher, Batching


class Tx:
    def __init__(self) -> None:
        self.memo: dict[object, object] = {}


class Msg(int):
    class raw_message:  # the shape Batcher reads
        message_id = None


class Recorder:
    def __init__(self, *, fail_prepare: bool = False) -> None:
        self.fail_prepare = fail_prepare
        self.log: list[tuple[str, object]] = []
        self.tx: Tx | None = None

    @contextlib.asynccontextmanager
    async def transaction(self, **_: object):
        self.tx = Tx()
        yield self.tx

    async def prepare(self, msgs: list[Msg], tx: Tx) -> None:
        assert tx is self.tx
        self.log.append(("prepare", list(msgs)))
        if self.fail_prepare:
            raise RuntimeError("lock timeout")
        tx.memo["seen"] = list(msgs)

    async def handler(self, msg: Msg, tx: Tx) -> None:
        assert tx is self.tx and tx.memo["seen"]  # prepared before any handler of the batch
        self.log.append(("handle", int(msg)))

    async def committed(self, msgs: list[Msg]) -> None:
        self.log.append(("committed", [int(m) for m in msgs]))

    async def alone(self, msg: Msg) -> None:
        self.log.append(("alone", int(msg)))


def _batcher(rec: Recorder) -> Batcher:
    return Batcher(Batching(rec.transaction, max_size=8, prepare=rec.prepare), rec.handler,
                   committed=rec.committed, alone=rec.alone, service="test", queue="q")


async def test_prepare_runs_once_before_the_batchs_handlers() -> None:
    rec = Recorder()
    await asyncio.gather(*(_batcher(rec).submit(Msg(i)) for i in range(1)))  # alone: no prepare
    assert rec.log == [("alone", 0)]
    rec.log.clear()
    b = _batcher(rec)
    await asyncio.gather(*(b.submit(Msg(i)) for i in range(4)))
    assert rec.log == [("prepare", [0, 1, 2, 3]), ("handle", 0), ("handle", 1), ("handle", 2), ("handle", 3),
                       ("committed", [0, 1, 2, 3])]


async def test_a_failing_prepare_sends_every_message_alone() -> None:
    rec = Recorder(fail_prepare=True)
    b = _batcher(rec)
    await asyncio.gather(*(b.submit(Msg(i)) for i in range(3)))
    assert rec.log == [("prepare", [0, 1, 2]), ("alone", 0), ("alone", 1), ("alone", 2)]


@pytest.mark.parametrize(("module", "queue"), [("services.intake.app", "intake.tickets"),
                                               ("services.sla.app", "sla.tickets"),
                                               ("services.notification.app", "notification.events")])
def test_the_hot_queues_prepare_their_batches(module: str, queue: str) -> None:
    import importlib

    built = importlib.import_module(module).build_runtime()
    rt = built[0] if isinstance(built, tuple) else built
    [consumer] = [c for c in rt.consumers if c.queue.name == queue]
    assert consumer.batcher is not None and consumer.batcher.cfg.prepare is not None
