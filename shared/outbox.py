"""Transactional outbox: a unit of work (``shared.unit``) writes events beside the state change;
``Relay`` publishes them.

The relay is woken by ``NOTIFY <schema>_outbox`` (sent by a trigger, delivered on commit), claims
unsent rows with ``FOR UPDATE SKIP LOCKED`` (so replicas share the work), publishes them to
``helpdesk.events`` with aio-pika on its own confirm-mode channel — the whole batch in flight at
once, each awaited for its publisher confirm — and marks the confirmed ones sent in one statement.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import aio_pika
import asyncpg
from prometheus_client import Counter, Gauge, Histogram

from shared import db, inbox, trust
from shared.dueloop import DueLoop
from shared.envelope import CONTENT_TYPE
from shared.topology import EVENTS

if TYPE_CHECKING:
    from shared.runtime import Runtime

log = logging.getLogger(__name__)

PUBLISHED = Counter("helpdesk_outbox_published_total", "Events published from the outbox", ["service", "type"])
PUBLISH_ERRORS = Counter("helpdesk_outbox_publish_errors_total", "Failed outbox publishes", ["service"])
LAG = Histogram(
    "helpdesk_outbox_lag_seconds", "Commit-to-confirm delay of outbox events", ["service"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
PENDING = Gauge("helpdesk_outbox_pending", "Unsent outbox rows at the last relay pass", ["service"])


class Relay(DueLoop):
    """Publishes a service's outbox; run one per process (any number of processes is safe)."""

    def __init__(
        self, rt: Runtime, *, fallback_poll_s: float = 2.0, publish_timeout_s: float = 10.0,
        retention_days: int = 7, inbox_retention_days: int = 30,
    ) -> None:
        super().__init__(name=f"outbox-relay-{rt.service}", listen_dsn=db.role_dsn(rt.settings, rt.service),
                         channel=f"{rt.service}_outbox", max_sleep_s=fallback_poll_s)
        self.rt, self.service, self.batch = rt, rt.service, rt.settings.outbox_batch
        self._amqp: aio_pika.abc.AbstractRobustConnection | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self.publish_timeout_s = publish_timeout_s
        self.retention_days, self.inbox_retention_days = retention_days, inbox_retention_days
        self._last_prune = 0.0

    async def pass_once(self) -> float | None:
        while await self.drain_once() >= self.batch:
            pass
        await self._maybe_prune()
        return None  # nothing is scheduled: the next commit's NOTIFY wakes us

    def on_error(self, exc: Exception) -> None:
        PUBLISH_ERRORS.labels(self.service).inc()
        self._exchange = None  # a new channel on the next pass (a closed one cannot confirm)
        log.warning("outbox relay pass failed", extra={"error": repr(exc)})

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        """The relay's own connection (the one it LISTENs on), so it never queues for the pool behind
        every busy handler — that starved publishing under load. The pool only when it is down."""
        if self._listener is not None and not self._listener.is_closed():
            yield self._listener
        else:
            async with self.rt.pool.acquire() as conn:
                yield conn

    async def drain_once(self) -> int:
        """Publish one batch of unsent rows; returns how many rows it claimed."""
        async with self._connection() as conn, conn.transaction():
            rows = await conn.fetch(
                f"SELECT id, event_id, routing_key, body, created_at FROM {self.service}.outbox"
                " WHERE sent_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                self.batch,
            )
            if not rows:
                PENDING.labels(self.service).set(0)
                return 0
            exchange = await self._events()
            results = await asyncio.gather(*(self._publish(exchange, r) for r in rows), return_exceptions=True)
            sent = [r for r, res in zip(rows, results, strict=True) if not isinstance(res, BaseException)]
            if sent:
                await conn.execute(f"UPDATE {self.service}.outbox SET sent_at = now() WHERE id = ANY($1)",
                                   [r["id"] for r in sent])
            self._count(sent)
            failed = [res for res in results if isinstance(res, BaseException)]
            PENDING.labels(self.service).set(len(rows) - len(sent))
        if failed:
            raise failed[0]
        return len(rows)

    def _count(self, sent: list[asyncpg.Record]) -> None:
        now, per_type = time.time(), {}
        lag = LAG.labels(self.service)
        for r in sent:
            per_type[r["routing_key"]] = per_type.get(r["routing_key"], 0) + 1
            lag.observe(max(0.0, now - r["created_at"].timestamp()))
        for routing_key, n in per_type.items():
            PUBLISHED.labels(self.service, routing_key).inc(n)

    async def _events(self) -> aio_pika.abc.AbstractExchange:
        """``helpdesk.events`` on the relay's own connection and confirm-mode channel (made once)."""
        if self._exchange is None or self._amqp is None or self._amqp.is_closed:
            if self._amqp is None:
                self._amqp = await aio_pika.connect_robust(self.rt.settings.amqp_url)
            channel = await self._amqp.channel(publisher_confirms=True)
            self._exchange = await channel.get_exchange(EVENTS.name, ensure=False)
        return self._exchange

    async def _publish(self, exchange: aio_pika.abc.AbstractExchange, row: asyncpg.Record) -> None:
        # Not mandatory: an event nobody subscribes to yet is still published, not returned.
        message = aio_pika.Message(bytes(row["body"]), delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                   message_id=str(row["event_id"]), content_type=CONTENT_TYPE,
                                   **trust.publish_options(self.rt.broker))  # user_id: consumers check who published
        await exchange.publish(message, routing_key=row["routing_key"], mandatory=False,
                               timeout=self.publish_timeout_s)

    async def stop(self) -> None:
        await super().stop()
        if self._amqp is not None:
            with contextlib.suppress(Exception):
                await self._amqp.close()
        self._amqp = self._exchange = None

    async def _maybe_prune(self) -> None:
        if time.monotonic() - self._last_prune < 3600:
            return
        self._last_prune = time.monotonic()
        async with self.rt.pool.acquire() as conn:
            await conn.execute(
                f"DELETE FROM {self.service}.outbox WHERE sent_at < now() - make_interval(days => $1)",
                self.retention_days,
            )
            await inbox.prune(conn, schema=self.service, days=self.inbox_retention_days)
