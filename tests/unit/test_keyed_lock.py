import asyncio

from shared.keyed_lock import KeyedLock


async def test_same_key_runs_in_arrival_order_other_keys_concurrently():
    locks, order = KeyedLock(), []

    async def work(key: str, i: int, delay: float) -> None:
        async with locks.hold(key):
            await asyncio.sleep(delay)
            order.append((key, i))

    await asyncio.gather(work("a", 1, 0.05), work("a", 2, 0.0), work("b", 1, 0.0), work("a", 3, 0.0))
    assert [i for k, i in order if k == "a"] == [1, 2, 3]
    assert order[0] == ("b", 1)  # not held up by "a"
    assert len(locks) == 0  # nothing kept once idle
