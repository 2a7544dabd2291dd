"""A background loop for due work (outbox rows, timers, scheduled surveys): do what is due, then
sleep until the next due moment — woken early by ``NOTIFY <channel>`` (sent by a trigger, delivered
on commit) — never on a fixed polling tick. Failures (database or broker down) back off with
jitter and retry; the work stays in its rows, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable

import asyncpg

log = logging.getLogger(__name__)
MIN_SLEEP_S = 0.02  # due rows another replica holds right now: look again soon, without spinning
HOUR_S = 3600.0  # the housekeeping loops' interval (``Runtime.every``)
DEAF_SLEEP_S = 1.0  # no LISTEN connection (database restarting, connections exhausted): poll this often
WAKE_MARGIN_S = 0.5  # a due moment this much after the planned wake-up is left to it (``due_payloads``)


class DueLoop:
    """Subclasses implement ``pass_once``: do the due work, return seconds until the next is due
    (None: nothing scheduled, sleep ``max_sleep_s``, which only guards against a lost NOTIFY).
    A service registers its loops with ``Runtime.add_loop``, which starts and stops them. ``grace_s``:
    how long ``stop`` lets a running pass finish (0: cancel it at once)."""

    grace_s: float = 0.0
    # True: a NOTIFY's payload may say when the work it announces is due (epoch seconds, the database's
    # clock); the loop then ignores one due after it wakes anyway (``WAKE_MARGIN_S`` for clock skew)
    due_payloads: bool = False

    def __init__(self, *, name: str, listen_dsn: str | None, channel: str | None, max_sleep_s: float) -> None:
        self.name, self.listen_dsn, self.channel, self.max_sleep_s = name, listen_dsn, channel, max_sleep_s
        self._wake_at = 0.0  # when the loop wakes on its own (wall clock); 0 while a pass runs
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncpg.Connection | None = None
        self.stopping = False

    async def pass_once(self) -> float | None:
        raise NotImplementedError

    def start(self) -> None:
        self.stopping = False
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Stop after the running pass (waiting at most ``grace_s``), then close the listener."""
        self.stopping = True
        self._wake.set()
        if self._task:
            if self.grace_s:
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(self._task), self.grace_s)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._listener is not None and not self._listener.is_closed():
            with contextlib.suppress(Exception):
                await self._listener.close()
        self._listener = None

    @property
    def listening(self) -> bool:
        """True when a NOTIFY would wake this loop (or it has no channel and relies on its timer)."""
        return not self.channel or (self._listener is not None and not self._listener.is_closed())

    def wake(self) -> None:
        self._wake.set()

    def on_error(self, exc: Exception) -> None:
        log.warning("background pass failed", extra={"loop": self.name, "error": repr(exc)})

    async def _ensure_listener(self) -> None:
        if not self.channel or (self._listener is not None and not self._listener.is_closed()):
            return
        try:
            conn = await asyncpg.connect(self.listen_dsn)
            await conn.add_listener(self.channel, lambda _conn, _pid, _channel, payload: self._notified(payload))
            self._listener = conn
        except (OSError, asyncpg.PostgresError) as exc:  # the timeout below still brings us back
            log.warning("listener unavailable", extra={"loop": self.name, "error": str(exc)})

    def _notified(self, payload: str) -> None:
        if self.due_payloads and payload:
            try:
                due = float(payload)
            except ValueError:
                due = 0.0
            if self._wake_at and due >= self._wake_at + WAKE_MARGIN_S:
                return  # the loop wakes before that anyway, and then looks at everything due
        self._wake.set()

    async def _run(self) -> None:
        backoff = 0.1
        while not self.stopping:
            await self._ensure_listener()
            self._wake.clear()
            self._wake_at = 0.0  # whatever is announced during the pass wakes the loop again after it
            try:
                sleep = await self.pass_once()
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the work stays in its rows
                self.on_error(exc)
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, 5.0)
                continue
            longest = self.max_sleep_s if self.listening else min(self.max_sleep_s, DEAF_SLEEP_S)
            timeout = longest if sleep is None else min(max(sleep, MIN_SLEEP_S), longest)
            self._wake_at = time.time() + timeout
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)


class Every(DueLoop):
    """A hook run every ``interval_s`` seconds (housekeeping, retention purges): the first run one
    interval after the start, a failure retried with the loop's backoff, nothing after ``stop``.
    ``Runtime.every`` builds and registers one; it needs no LISTEN channel."""

    def __init__(self, interval_s: float, hook: Callable[[], Awaitable[object]], *, name: str) -> None:
        super().__init__(name=name, listen_dsn=None, channel=None, max_sleep_s=interval_s)
        self.interval_s, self.hook = interval_s, hook
        self._first = True

    async def pass_once(self) -> float | None:
        if self._first:  # starting is not the moment to purge: wait one interval
            self._first = False
            return self.interval_s
        await self.hook()
        return self.interval_s

    def on_error(self, exc: Exception) -> None:
        log.warning("periodic task failed", extra={"task": self.name, "error": repr(exc)})
