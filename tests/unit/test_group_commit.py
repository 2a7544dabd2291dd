"""shared.batching.GroupCommit: what arrives while a write runs goes in the next write, together; a
failing item fails its own submitter only; nothing waits forever when the writer is cancelled."""

from __future__ import annotations

import asyncio

import pytest

from shared.batching import GroupCommit


class Store:
    def __init__(self, *, bad: set[int] = frozenset(), delay: float = 0.01) -> None:  # type: ignore[assignment]
        self.writes: list[list[int]] = []
        self.rows: list[int] = []
        self.bad, self.delay = bad, delay

    async def write(self, items: list[int]) -> None:
        self.writes.append(list(items))
        await asyncio.sleep(self.delay)
        if self.bad & set(items):
            raise ValueError(f"bad item in {items}")
        self.rows.extend(items)


async def test_an_idle_writer_writes_at_once_and_a_busy_one_gathers() -> None:
    store = Store()
    gc = GroupCommit(store.write)
    await gc.submit(1)
    assert store.writes == [[1]]  # alone: written at once, not held back for company
    await asyncio.gather(*(gc.submit(i) for i in range(2, 12)))
    # the first of the ten writes alone; the nine that arrived meanwhile share the next write
    assert store.writes[1:] == [[2], list(range(3, 12))]
    assert sorted(store.rows) == list(range(1, 12))


async def test_a_failing_item_fails_alone() -> None:
    store = Store(bad={5})
    gc = GroupCommit(store.write)
    results = await asyncio.gather(*(gc.submit(i) for i in range(1, 9)), return_exceptions=True)
    failed = [i for i, r in zip(range(1, 9), results, strict=True) if isinstance(r, Exception)]
    assert failed == [5]
    assert sorted(store.rows) == [1, 2, 3, 4, 6, 7, 8]  # each written exactly once
    assert [5] in store.writes  # the bad one was tried alone too


async def test_cancelling_the_writer_releases_the_waiters() -> None:
    store = Store(delay=0.2)
    gc = GroupCommit(store.write)
    first = asyncio.create_task(gc.submit(1))
    await asyncio.sleep(0.01)
    others = [asyncio.create_task(gc.submit(i)) for i in (2, 3)]
    await asyncio.sleep(0.01)
    first.cancel()
    for task in [first, *others]:
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 1.0)
    await gc.submit(4)  # and the next submitter writes again
    assert store.rows == [4]
