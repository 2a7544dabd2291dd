"""Per-key FIFO locks: messages about one ticket handled in the order this process received them.

A consumer gets its messages in queue order but runs them concurrently (one task per delivery,
up to the prefetch), so two commands for one ticket could otherwise be applied in either order.
Taking the key's lock before the handler's first ``await`` restores arrival order within a
process. The locks hold no data: losing them (a restart) loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class KeyedLock:
    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:  # asyncio.Lock wakes waiters first come, first served
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)
