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
