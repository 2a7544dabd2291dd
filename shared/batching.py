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
  batch rolls back and **every message of it is handled again alone**, in arrival order, by the
  ordinary per-message path with its own transaction, retry and dead-letter rules. So a batch
  changes how often we commit, never what is committed: a message is acked only after a commit
  that includes its effect;
* effects outside the database (waking a worker, counting a metric) go through
  :func:`after_commit`, which runs them after the commit, or at once outside a batch.
A message that arrives alone takes the ordinary path at once. The batches of a queue run one after
another (or ``parallel`` at a time): while one runs, the deliveries behind it gather into the next.
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
    """Stands in for the service's pool while a batch runs: ``acquire()`` yields the batch's one
    connection, and ``fetch``/``execute``/… run on it, as they would on a pooled one."""

    def __init__(self, conn: Any, base: Any = None) -> None:
        self.conn, self.base = BatchConnection(conn), base  # base: the service's pool it stands in for

    @contextlib.asynccontextmanager
    async def acquire(self, **_: Any) -> AsyncIterator[BatchConnection]:
        yield self.conn

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


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


Settle = Callable[[Any], Awaitable[None]]


class Batcher:
    """Runs a queue's deliveries in batches. ``committed`` settles a message whose batch committed (ack);
    ``alone`` is the ordinary per-message path (own transaction, then ack, retry or dead letter)."""

    def __init__(self, cfg: Batching, handler: Settle, *, committed: Settle, alone: Settle, service: str,
                 queue: str) -> None:
        self.cfg, self.handler, self.committed, self.alone = cfg, handler, committed, alone
        self.service, self.queue = service, queue
        self._pending: list[tuple[Any, asyncio.Future[None]]] = []
        self._runners = 0  # counted here, not from _tasks: a finishing runner leaves _tasks a bit later
        self._tasks: set[asyncio.Task[None]] = set()  # references, so running batches are not collected
        for outcome in ("committed", "rolled_back"):
            BATCHES.labels(service, queue, outcome)

    async def submit(self, msg: Any) -> None:
        """Returns once ``msg`` is settled: acked after its batch committed, or handled alone."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((msg, fut))
        if self._runners < self.cfg.parallel:
            self._runners += 1
            task = asyncio.create_task(self._run())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await fut

    async def _run(self) -> None:
        try:
            await asyncio.sleep(0)  # let the deliveries that arrived with this one join it
            while self._pending:
                batch = self._pending[: self.cfg.max_size]
                del self._pending[: self.cfg.max_size]
                try:
                    await self._settle([msg for msg, _ in batch])
                finally:
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_result(None)
        finally:
            self._runners -= 1

    async def _settle(self, msgs: list[Any]) -> None:
        # One message gains nothing from a batch; a failed batch is handled again alone, in arrival order.
        step = self.committed if len(msgs) > 1 and await self._commit(msgs) else self.alone
        for msg in msgs:
            try:
                await step(msg)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - an ack on a lost channel: the broker redelivers it
                log.warning("could not settle a delivery", extra={"queue": self.queue, "error": repr(exc)})

    async def _commit(self, msgs: list[Any]) -> bool:
        """Run every handler of the batch in one transaction; False if it rolled back."""
        base = self.cfg.pool()
        after: list[Callable[[], None]] = []
        try:
            async with base.acquire() as conn, conn.transaction():
                token = _scope.set(_Scope(BatchPool(conn, base), after))
                try:
                    for msg in msgs:
                        await self.handler(msg)
                finally:
                    _scope.reset(token)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - each message again, alone: its own transaction, retry, dead letter
            log.info("batch rolled back; handling its messages one by one",
                     extra={"queue": self.queue, "size": len(msgs), "error": repr(exc)})
            BATCHES.labels(self.service, self.queue, "rolled_back").inc()
            return False
        BATCHES.labels(self.service, self.queue, "committed").inc()
        BATCH_SIZE.labels(self.service, self.queue).observe(len(msgs))
        for fn in after:
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - committed already: an after-commit effect must not undo the acks
                log.warning("after-commit hook failed", extra={"queue": self.queue, "error": repr(exc)})
        return True
