"""The batcher's linger: a batch that is not full waits ``linger_s`` for more deliveries (so a steadily
fed queue commits once per few deliveries), returns at once when it fills, and without linger a
delivery that arrives alone is handled alone at once."""

from __future__ import annotations

import asyncio
import contextlib
import time

from shared.batching import Batcher, Batching


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.alone: list[int] = []
        self._current: list[int] | None = None

    @contextlib.asynccontextmanager
    async def transaction(self, **_: object):
        self._current = []
        yield self
        self.batches.append(self._current)
        self._current = None

    async def handler(self, msg: int, tx: object) -> None:
        assert self._current is not None and tx is self
        self._current.append(msg)

    async def committed(self, msgs: list[int]) -> None:
        pass

    async def on_alone(self, msg: int) -> None:
        self.alone.append(msg)


class Msg(int):
    class raw_message:  # noqa: N801 - the shape Batcher reads (message ids for the inbox prefetch)
        message_id = None


def batcher(rec: Recorder, *, linger_s: float, max_size: int = 32) -> Batcher:
    return Batcher(Batching(rec.transaction, max_size=max_size, linger_s=linger_s), rec.handler,
                   committed=rec.committed, alone=rec.on_alone, service="test", queue=f"q-{linger_s}-{max_size}")


async def trickle(b: Batcher, n: int, gap_s: float) -> None:
    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(b.submit(Msg(i))))
        await asyncio.sleep(gap_s)
    await asyncio.gather(*tasks)


async def test_without_linger_a_trickle_is_handled_one_by_one() -> None:
    rec = Recorder()
    await trickle(batcher(rec, linger_s=0.0), 6, 0.01)
    assert rec.batches == [] and rec.alone == [0, 1, 2, 3, 4, 5]


async def test_linger_gathers_a_trickle_into_batches_in_arrival_order() -> None:
    rec = Recorder()
    await trickle(batcher(rec, linger_s=0.2), 6, 0.01)
    assert rec.batches == [[0, 1, 2, 3, 4, 5]] and rec.alone == []


async def test_a_full_batch_does_not_wait_out_the_linger() -> None:
    rec = Recorder()
    b = batcher(rec, linger_s=5.0, max_size=4)
    started = time.monotonic()
    await asyncio.gather(*(b.submit(Msg(i)) for i in range(8)))
    assert rec.batches == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert time.monotonic() - started < 2.0  # far below the 5 s linger: both batches ran as soon as full
