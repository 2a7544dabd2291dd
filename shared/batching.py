"""Batched consumption: many deliveries of one queue, one database transaction.

Under load a queue holds many messages, and handling each in its own transaction spends most of the
time on per-transaction and per-statement work. A :class:`Batcher` gathers the deliveries that are
waiting (FastStream hands each one to its own task, up to the prefetch) and runs their handlers one
after another in **one transaction** (a ``shared.unit.Tx``), handed to each handler explicitly:

* a handler is ``handler(msg, tx)``: ``tx`` is the batch's transaction, or ``None`` when the message
  is handled alone; its use case opens ``rt.unit(..., within=tx)``, which joins the batch's Tx.
  The Tx collects inbox ids, sequence increments, outbox rows and staged inserts and writes each
  kind as one multi-row statement before the batch commits;
* every delivery of the batch is acked only after the batch commits;
* if anything in the batch fails (a poison message, a lock timeout, a deadlock with a replica, an
  inbox id a replica claimed meanwhile), the batch rolls back and **every message of it is handled
  again alone**, in arrival order, by the ordinary per-message path with its own transaction, retry
  and dead-letter rules. So a batch changes how often we commit, never what is committed;
* ``prepare`` (optional) runs first with all of the batch's deliveries: one statement reads and locks
  the rows every handler will need (``tx.memo``), instead of one look-up per message;
* effects outside the database go through ``u.after_commit``: run after the batch's commit, and not
  at all if it rolls back (the message is then handled again alone).
A message that arrives alone takes the ordinary path at once. The batches of a queue run one after
another (or ``parallel`` at a time): while one runs, the deliveries behind it gather into the next.

``linger_s`` (0: off) lets a batch that is not full wait that long for more deliveries before it runs:
a queue fed at a steady rate by upstream services (every event folded by review, the timeline) then
commits once per few deliveries instead of once each, which is most of what a delivery costs. The
queues a ticket's first hops wait on (intake's and routing's) keep 0, so their latency is untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from prometheus_client import Counter, Histogram

from shared.errors import DomainError

log = logging.getLogger(__name__)
T = TypeVar("T")

BATCHES = Counter("helpdesk_consumer_batches_total", "Batches of deliveries handled in one transaction",
                  ["service", "queue", "outcome"])
BATCH_SIZE = Histogram("helpdesk_consumer_batch_size", "Deliveries per batch transaction", ["service", "queue"],
                       buckets=(1, 2, 4, 8, 16, 32, 64, 128))


@dataclass
class Batching:
    """How a queue is consumed in batches: how to open a transaction, batch size, batches at once."""

    transaction: Callable[..., contextlib.AbstractAsyncContextManager[Any]]
    max_size: int = 32
    parallel: int = 1
    linger_s: float = 0.0
    prepare: Prepare | None = None


Settle = Callable[[Any], Awaitable[None]]
Handler = Callable[[Any, Any], Awaitable[None]]
Prepare = Callable[[list[Any], Any], Awaitable[None]]
"""``prepare(msgs, tx)``: before a batch's handlers run, read (and lock) in one statement what all of
them will need, into ``tx.memo``; a handler's use case then finds its rows there (and, handled alone,
reads them itself). Its failure rolls the batch back like a handler's."""


def decode_batch(msgs: list[Any], tx: Any, decode: Callable[[Any], T]) -> list[T]:
    """For a ``prepare``: each delivery of the batch decoded once and kept in ``tx.memo`` under the
    delivery, for its handler (``decoded``). One that does not decode is left out here: its handler
    decodes it again and raises the reason (the batch rolls back, and that message is refused alone)."""
    values = []
    for msg in msgs:
        try:
            value = decode(msg)
        except (ValueError, DomainError) as exc:
            log.debug("left to its handler", extra={"error": repr(exc)})
            continue
        tx.memo[msg] = value
        values.append(value)
    return values


def decoded(msg: Any, tx: Any, decode: Callable[[Any], T]) -> T:
    """What ``decode_batch`` kept for ``msg``, else ``decode(msg)`` (handled alone, or not decodable)."""
    kept = tx.memo.pop(msg, None) if tx is not None else None
    return kept if kept is not None else decode(msg)


class Batcher:
    """Runs a queue's deliveries in batches. ``committed`` settles the messages of a batch that committed
    (ack); ``alone`` is the ordinary per-message path (own transaction, then ack, retry or dead letter)."""

    def __init__(self, cfg: Batching, handler: Handler, *, committed: Callable[[list[Any]], Awaitable[None]],
                 alone: Settle, service: str,
                 queue: str) -> None:
        self.cfg, self.handler, self.committed, self.alone = cfg, handler, committed, alone
        self.service, self.queue = service, queue
        self._pending: list[tuple[Any, asyncio.Future[None]]] = []
        self._full = asyncio.Event()  # set when a lingering batch has max_size deliveries waiting
        self._runners = 0  # counted here, not from _tasks: a finishing runner leaves _tasks a bit later
        self._tasks: set[asyncio.Task[None]] = set()  # references, so running batches are not collected
        for outcome in ("committed", "rolled_back"):
            BATCHES.labels(service, queue, outcome)

    async def submit(self, msg: Any) -> None:
        """Returns once ``msg`` is settled: acked after its batch committed, or handled alone."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((msg, fut))
        if len(self._pending) >= self.cfg.max_size:
            self._full.set()
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
                if self.cfg.linger_s and len(self._pending) < self.cfg.max_size:
                    await self._linger()
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

    async def _linger(self) -> None:
        """Wait up to ``linger_s`` for the batch to fill (returns at once when it does)."""
        self._full.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._full.wait(), self.cfg.linger_s)

    async def _settle(self, msgs: list[Any]) -> None:
        # One message gains nothing from a batch; a failed batch is handled again alone, in arrival order.
        if len(msgs) > 1 and await self._commit(msgs):
            await self._quietly(self.committed, msgs)
            return
        for msg in msgs:
            await self._quietly(self.alone, msg)

    async def _quietly(self, step: Callable[[Any], Awaitable[None]], arg: Any) -> None:
        try:
            await step(arg)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - an ack on a lost channel: the broker redelivers it
            log.warning("could not settle a delivery", extra={"queue": self.queue, "error": repr(exc)})

    async def _commit(self, msgs: list[Any]) -> bool:
        """Run every handler of the batch in one transaction; False if it rolled back."""
        try:
            async with self.cfg.transaction(batch_ids=[m.raw_message.message_id for m in msgs]) as tx:
                if self.cfg.prepare is not None:
                    await self.cfg.prepare(msgs, tx)
                for msg in msgs:
                    await self.handler(msg, tx)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - each message again, alone: its own transaction, retry, dead letter
            log.info("batch rolled back; handling its messages one by one",
                     extra={"queue": self.queue, "size": len(msgs), "error": repr(exc)})
            BATCHES.labels(self.service, self.queue, "rolled_back").inc()
            return False
        BATCHES.labels(self.service, self.queue, "committed").inc()
        BATCH_SIZE.labels(self.service, self.queue).observe(len(msgs))
        return True


class GroupCommit(Generic[T]):
    """Writes what many tasks submit in as few transactions as the load allows (group commit).

    ``await submit(item)`` returns once ``item`` is written. A submitter that finds no write running
    writes everything pending, then whatever arrived during that write, until nothing is left; so an
    idle system writes each item at once, and a busy one many per transaction. If a write fails, each
    of its items is written again alone: a failing item fails its own submitter only."""

    def __init__(self, write: Callable[[list[T]], Awaitable[None]]) -> None:
        self._write = write
        self._pending: list[tuple[T, asyncio.Future[None]]] = []
        self._running = False

    async def submit(self, item: T) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((item, done))
        if not self._running:
            self._running = True
            batch: list[tuple[T, asyncio.Future[None]]] = []
            try:
                while self._pending:
                    batch, self._pending = self._pending, []
                    await self._flush(batch)
            except BaseException:  # cancelled mid-write: nobody is left to write for the waiters
                for _, fut in batch + self._pending:
                    if not fut.done():
                        fut.cancel()
                self._pending = []
                raise
            finally:
                self._running = False
        await done

    async def _flush(self, batch: list[tuple[T, asyncio.Future[None]]]) -> None:
        try:
            await self._write([item for item, _ in batch])
        except Exception as exc:  # noqa: BLE001 - each item is tried alone below
            if len(batch) == 1:
                batch[0][1].set_exception(exc)
                return
            for item, fut in batch:
                try:
                    await self._write([item])
                except Exception as one:  # noqa: BLE001 - its submitter gets it
                    fut.set_exception(one)
                else:
                    fut.set_result(None)
            return
        for _, fut in batch:
            fut.set_result(None)
