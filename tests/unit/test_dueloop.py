import asyncio

from shared.dueloop import DEAF_SLEEP_S, DueLoop


class Counting(DueLoop):
    def __init__(self, **kw) -> None:  # noqa: ANN003
        super().__init__(name="t", max_sleep_s=30.0, **kw)
        self.passes = 0

    async def pass_once(self) -> float | None:
        self.passes += 1
        return None  # nothing scheduled: sleep as long as allowed


async def test_wake_runs_a_pass_at_once():
    loop = Counting(listen_dsn=None, channel=None)
    loop.start()
    try:
        await asyncio.sleep(0.05)
        assert loop.passes == 1
        loop.wake()
        await asyncio.sleep(0.05)
        assert loop.passes == 2
    finally:
        await loop.stop()


async def test_without_its_listener_the_loop_polls_instead_of_sleeping_max_sleep():
    # nothing listens on port 1: NOTIFY cannot reach this loop, so it must not trust max_sleep_s
    loop = Counting(listen_dsn="postgresql://postgres@127.0.0.1:1/none", channel="nowhere")
    loop.start()
    try:
        await asyncio.sleep(DEAF_SLEEP_S * 2.5)
        assert not loop.listening
        assert loop.passes >= 2
    finally:
        await loop.stop()


async def test_every_runs_one_interval_after_the_start_retries_a_failure_and_stops():
    from shared.dueloop import Every

    calls: list[float] = []
    start = asyncio.get_running_loop().time()

    async def hook() -> None:
        calls.append(asyncio.get_running_loop().time() - start)
        if len(calls) == 2:
            raise RuntimeError("database down")  # retried after the backoff, not an interval later

    loop = Every(0.2, hook, name="every")
    loop.start()
    try:
        await asyncio.sleep(0.1)
        assert calls == []  # not at the start
        await asyncio.sleep(0.15)
        assert len(calls) == 1 and calls[0] >= 0.19
        await asyncio.sleep(0.45)  # second at ~0.4 fails, its retry after ~0.05-0.15 s, then +0.2
        assert len(calls) >= 3
        assert calls[2] - calls[1] < 0.19  # the retry came before a whole interval
    finally:
        await loop.stop()
    done = len(calls)
    await asyncio.sleep(0.3)
    assert len(calls) == done  # nothing after the stop
