"""Batched consumption: many deliveries of one queue, one database transaction.

Under load a queue holds many messages, and handling each in its own transaction spends most of the
time on per-transaction work (BEGIN, COMMIT and its WAL flush, a NOTIFY that wakes the outbox
relay, one relay pass per event). A :class:`Batcher` gathers the deliveries that are waiting
(FastStream hands each one to its own task, up to the prefetch) and runs their handlers one after
another on **one connection in one transaction**:

* handlers are unchanged: while a batch runs, ``Runtime.pool`` is a :class:`BatchPool` whose
  ``acquire()`` yields the batch's connection and whose nested ``transaction()`` joins the batch's;
* every delivery of the batch is acked only after the batch commits;
* if anything in the batch fails (a poison message, a lock timeout, a deadlock with a replica), the
  batch rolls back and **every message of it is handled again alone**, by the ordinary per-message
  path with its own transaction, retry and dead-letter rules. So a batch changes how often we
  commit, never what is committed: a message is acked only after a commit that includes its effect;
* effects outside the database (waking a worker, counting a metric) go through
  :func:`after_commit`, which runs them after the commit, or at once outside a batch.
A message that arrives alone is a batch of one. The batches of a queue run one after another (or
``parallel`` at a time): while one runs, the deliveries behind it gather into the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter, Histogram

log = logging.getLogger(__name__)

BATCHES = Counter("helpdesk_consumer_batches_total", "Batches of deliveries handled in one transaction",
                  ["service", "queue", "outcome"])
BATCH_SIZE = Histogram("helpdesk_consumer_batch_size", "Deliveries per batch transaction", ["service", "queue"],
                       buckets=(1, 2, 4, 8, 16, 32, 64, 128))

SINGLE = object()  # outcome: handle this message alone, on the ordinary path


class _Joined:
    """A nested ``transaction()`` inside the batch: it joins the batch's transaction."""

    async def __aenter__(self) -> _Joined:  # noqa: PYI034
        return self

    async def __aexit__(self, *exc: object) -> bool:
        return False


class BatchConnection:
    """The batch's connection as a handler sees it; everything but ``transaction()`` passes through."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def transaction(self, **_: Any) -> _Joined:
        return _Joined()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


class BatchPool:
    """Stands in for the service's pool while a batch runs: one connection, one transaction."""

    def __init__(self, conn: Any, base: Any = None) -> None:
        self.conn, self.base = BatchConnection(conn), base  # base: the service's pool it stands in for

    @contextlib.asynccontextmanager
    async def acquire(self, **_: Any) -> AsyncIterator[BatchConnection]:
        yield self.conn

    async def execute(self, *args: Any, **kw: Any) -> Any:
        return await self.conn.execute(*args, **kw)

    async def executemany(self, *args: Any, **kw: Any) -> Any:
        return await self.conn.executemany(*args, **kw)

    async def fetch(self, *args: Any, **kw: Any) -> Any:
        return await self.conn.fetch(*args, **kw)

    async def fetchrow(self, *args: Any, **kw: Any) -> Any:
        return await self.conn.fetchrow(*args, **kw)

    async def fetchval(self, *args: Any, **kw: Any) -> Any:
        return await self.conn.fetchval(*args, **kw)


@dataclass
class _Scope:
    pool: BatchPool
    after: list[Callable[[], None]] = field(default_factory=list)


_scope: ContextVar[_Scope | None] = ContextVar("helpdesk_batch", default=None)


def current_pool() -> BatchPool | None:
    """The batch's pool when called from a handler running in a batch, else ``None``."""
    scope = _scope.get()
    return scope.pool if scope else None


def after_commit(fn: Callable[[], None]) -> None:
    """Run ``fn`` once the handler's changes are committed: now outside a batch, after its commit in one
    (and not at all if the batch rolls back: the message is then handled again alone)."""
    scope = _scope.get()
    if scope is None:
        fn()
    else:
        scope.after.append(fn)


@dataclass
class Batching:
    """How a queue is consumed in batches: the service's real pool, batch size, batches at once."""

    pool: Callable[[], Any]
    max_size: int = 32
    parallel: int = 1


class Batcher:
    def __init__(self, cfg: Batching, handler: Callable[[Any], Awaitable[None]], *, service: str,
                 queue: str) -> None:
        self.cfg, self.handler, self.service, self.queue = cfg, handler, service, queue
        self._pending: list[tuple[Any, asyncio.Future[object]]] = []
        self._runners = 0
        self._tasks: set[asyncio.Task[None]] = set()
        for outcome in ("committed", "rolled_back"):
            BATCHES.labels(service, queue, outcome)

    async def submit(self, msg: Any) -> object:
        """``None`` once ``msg``'s effect is committed in a batch; :data:`SINGLE` to handle it alone."""
        fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._pending.append((msg, fut))
        if self._runners < self.cfg.parallel:
            self._runners += 1
            task = asyncio.create_task(self._run())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await fut

    async def _run(self) -> None:
        try:
            await asyncio.sleep(0)  # let the deliveries that arrived with this one join it
            while self._pending:
                batch = self._pending[: self.cfg.max_size]
                del self._pending[: self.cfg.max_size]
                outcome = await self._handle(batch)
                for _, fut in batch:
                    if not fut.done():
                        fut.set_result(outcome)
        finally:
            self._runners -= 1

    async def _handle(self, batch: list[tuple[Any, asyncio.Future[object]]]) -> object:
        scope: _Scope | None = None
        try:
            base = self.cfg.pool()
            async with base.acquire() as conn, conn.transaction():
                scope = _Scope(BatchPool(conn, base))
                token = _scope.set(scope)
                try:
                    for msg, _ in batch:
                        await self.handler(msg)
                finally:
                    _scope.reset(token)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - each message again, alone: its own transaction, retry, dead letter
            log.info("batch rolled back; handling its messages one by one",
                     extra={"queue": self.queue, "size": len(batch), "error": repr(exc)})
            BATCHES.labels(self.service, self.queue, "rolled_back").inc()
            return SINGLE
        BATCHES.labels(self.service, self.queue, "committed").inc()
        BATCH_SIZE.labels(self.service, self.queue).observe(len(batch))
        for fn in scope.after:
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - committed already: an after-commit effect must not undo the acks
                log.warning("after-commit hook failed", extra={"queue": self.queue, "error": repr(exc)})
        return None
