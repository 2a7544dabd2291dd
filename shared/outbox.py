"""Transactional outbox: a unit of work (``shared.unit``) writes events beside the state change;
``Relay`` publishes them.

Publish on commit (``HELPDESK_PUBLISH_ON_COMMIT``, on by default): a transaction writes its events with
a lease (``lease_until``) and, once it has committed, hands them to its process's relay (``Relay.hand``),
which publishes them at once — no NOTIFY, no claiming transaction — and marks the confirmed ones sent
together, ``mark_delay_s`` (0.1 s) later: at a steady rate one statement (and one commit) marks the
events of many transactions, not one each. The lease covers that wait many times over. What that does not publish (the process died between commit and publish, the broker
refused or timed out) is the relay's: a failed row's lease is dropped at once, a dead process's runs out
(``publish_timeout_s`` + 5 s), and the relay's pass takes only rows without a live lease.

The relay is woken by ``NOTIFY <schema>_outbox`` (sent by a trigger, delivered on commit), claims
unsent rows with ``FOR UPDATE SKIP LOCKED`` (so replicas share the work), publishes them to
``helpdesk.events`` on its own confirm-mode channel (aiormq's, beneath aio-pika's robust one: no message
object or timer per event) — the whole batch in flight at once, each awaited for its publisher confirm
— and marks the confirmed ones sent in one statement.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import aio_pika
import aiormq
import asyncpg
from prometheus_client import Counter, Gauge, Histogram

from shared import amqpwire, db, inbox, trust
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
        retention_days: int = 7, inbox_retention_days: int = 30, mark_delay_s: float = 0.1,
    ) -> None:
        super().__init__(name=f"outbox-relay-{rt.service}", listen_dsn=db.role_dsn(rt.settings, rt.service),
                         channel=f"{rt.service}_outbox", max_sleep_s=fallback_poll_s)
        self.rt, self.service, self.batch = rt, rt.service, rt.settings.outbox_batch
        self._amqp: aio_pika.abc.AbstractRobustConnection | None = None
        self._chan: aio_pika.abc.AbstractChannel | None = None
        self.publish_timeout_s = publish_timeout_s
        self.retention_days, self.inbox_retention_days = retention_days, inbox_retention_days
        self._last_prune = 0.0
        self.lease_s = publish_timeout_s + 5.0  # a handed row's lease: longer than its publish may take
        self._handed: list[dict[str, Any]] = []  # rows committed by this process, to publish now (``hand``)
        self._handing: asyncio.Task[None] | None = None
        self._marker: asyncpg.Connection | None = None  # the hand-off's own connection (marks rows sent)
        self.mark_delay_s = mark_delay_s
        self._confirmed: list[Mapping[str, Any]] = []  # handed rows the broker confirmed, not yet marked sent
        self._marking: asyncio.Task[None] | None = None
        self._marker_lock = asyncio.Lock()  # the marker connection runs one statement at a time
        self._chan_lock = asyncio.Lock()

    async def pass_once(self) -> float | None:
        while await self.drain_once() >= self.batch:
            pass
        await self._maybe_prune()
        return None  # nothing is scheduled: the next commit's NOTIFY wakes us

    def on_error(self, exc: Exception) -> None:
        PUBLISH_ERRORS.labels(self.service).inc()
        self._chan = None  # a new channel on the next pass (a closed one cannot confirm)
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
        """Publish one batch of unsent rows nobody holds a lease on; returns how many rows it claimed."""
        async with self._connection() as conn, conn.transaction():
            rows = await conn.fetch(
                f"SELECT id, event_id, routing_key, body, created_at FROM {self.service}.outbox"
                " WHERE sent_at IS NULL AND (lease_until IS NULL OR lease_until < now())"
                " ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                self.batch,
            )
            if not rows:
                PENDING.labels(self.service).set(0)
                return 0
            results = await self._publish_all(rows)
            sent = [r for r, res in zip(rows, results, strict=True) if res is None]
            await self._mark(conn, sent=sent)
            self._count(sent)
            failed = [res for res in results if res is not None]
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

    async def _channel(self) -> aiormq.abc.AbstractChannel:
        """The relay's own connection and confirm-mode channel (made once; after a reconnect, the robust
        channel's new underlying one). The relay's passes and the hand-off share it."""
        async with self._chan_lock:
            if self._chan is None or self._amqp is None or self._amqp.is_closed:
                if self._amqp is None:
                    self._amqp = await amqpwire.connect_robust(self.rt.settings.amqp_url)
                self._chan = await self._amqp.channel(publisher_confirms=True)
            return await self._chan.get_underlay_channel()

    # ---- publish on commit: this process's own events, right after their commit ------------------------

    def hand(self, rows: list[dict[str, Any]]) -> None:
        """Rows a transaction of this process just committed with a lease (``Tx.leased``): published at
        once, in commit order, without waiting for a relay pass; what fails is left to the relay."""
        if self.stopping:
            return  # their leases run out and a relay takes them
        self._handed.extend(rows)
        if self._handing is None or self._handing.done():
            self._handing = asyncio.create_task(self._hand_off(), name=f"outbox-hand-off-{self.service}")

    async def _hand_off(self) -> None:
        while self._handed:
            rows, self._handed = self._handed, []
            try:
                results = await self._publish_all(rows)
            except Exception as exc:  # noqa: BLE001 - no channel (broker down): the relay takes them
                results = [exc] * len(rows)
            sent = [r for r, res in zip(rows, results, strict=True) if res is None]
            failed = [r for r, res in zip(rows, results, strict=True) if res is not None]
            self._count(sent)
            if sent:  # marked together with what the next ``mark_delay_s`` confirms
                self._confirmed.extend(sent)
                if self._marking is None or self._marking.done():
                    self._marking = asyncio.create_task(self._mark_soon(), name=f"outbox-mark-{self.service}")
            if failed:  # their leases dropped now; counted and a new channel, as a failed pass; the relay retries
                await self._mark_handed(failed=failed)
                self.on_error(next(res for res in results if res is not None))  # type: ignore[arg-type]
                self.wake()

    async def _mark_soon(self) -> None:
        await asyncio.sleep(self.mark_delay_s)
        await self._mark_confirmed()

    async def _mark_confirmed(self) -> None:
        while self._confirmed:
            sent, self._confirmed = self._confirmed, []
            await self._mark_handed(sent=sent)

    async def _mark_handed(self, *, sent: Sequence[Mapping[str, Any]] = (),
                           failed: Sequence[Mapping[str, Any]] = ()) -> None:
        """``_mark`` on the hand-off's own connection (the relay's pass may be using its listener)."""
        async with self._marker_lock:
            try:
                if self._marker is None or self._marker.is_closed():
                    self._marker = await asyncpg.connect(db.role_dsn(self.rt.settings, self.service))
                await self._mark(self._marker, sent=sent, failed=failed)
            except Exception as exc:  # noqa: BLE001 - their leases run out and the relay publishes them again
                log.warning("outbox hand-off could not mark its rows", extra={"error": repr(exc)})
                await self._close_marker()

    async def _mark(self, conn: asyncpg.Connection, *, sent: Sequence[Mapping[str, Any]],
                    failed: Sequence[Mapping[str, Any]] = ()) -> None:
        """The confirmed rows sent, in one statement; the failed ones' leases dropped (the relay takes them
        at once: the hand-off's failures), in one more."""
        if sent:
            await conn.execute(f"UPDATE {self.service}.outbox SET sent_at = now() WHERE id = ANY($1)",
                               [r["id"] for r in sent])
        if failed:
            await conn.execute(f"UPDATE {self.service}.outbox SET lease_until = NULL WHERE id = ANY($1)",
                               [r["id"] for r in failed])

    async def _close_marker(self) -> None:
        if self._marker is not None:
            with contextlib.suppress(Exception):
                await self._marker.close()
        self._marker = None

    async def _publish_all(self, rows: Sequence[Mapping[str, Any]]) -> list[BaseException | None]:
        """Publish ``rows`` on the channel beneath aio-pika (no message object, no timer per message), all
        in flight at once; each row's outcome: None once the broker confirmed it, else the error. Those not
        confirmed within ``publish_timeout_s`` fail with a timeout (their rows stay unsent, published again)."""
        channel = await self._channel()
        user = trust.publish_options(self.rt.broker).get("user_id")  # consumers check who published

        async def one(row: Mapping[str, Any]) -> None:
            # Not mandatory: an event nobody subscribes to yet is still published, not returned. Not waiting
            # for the socket write (``wait``): the confirm says the broker has it, and frames keep their order.
            props = aiormq.spec.Basic.Properties(delivery_mode=2, message_id=str(row["event_id"]),
                                                 content_type=CONTENT_TYPE, user_id=user)
            await channel.basic_publish(bytes(row["body"]), exchange=EVENTS.name, routing_key=row["routing_key"],
                                        properties=props, mandatory=False, wait=False)

        tasks = [asyncio.ensure_future(one(r)) for r in rows]
        _, pending = await asyncio.wait(tasks, timeout=self.publish_timeout_s)
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.wait(pending)
        timeout = TimeoutError(f"no publisher confirm within {self.publish_timeout_s} s")
        return [timeout if t in pending else t.exception() for t in tasks]

    async def stop(self) -> None:
        """Let the hand-off finish what it holds (briefly: leases cover the rest) and mark what it
        published, then stop the relay."""
        if self._handing is not None and not self._handing.done():
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._handing), 3.0)
            self._handing.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._handing
        self._handing = None
        if self._marking is not None:  # at most mark_delay_s away
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._marking, 3.0)
            self._marking = None
        with contextlib.suppress(TimeoutError, Exception):
            await asyncio.wait_for(self._mark_confirmed(), 3.0)
        await super().stop()
        await self._close_marker()
        if self._amqp is not None:
            with contextlib.suppress(Exception):
                await self._amqp.close()
        self._amqp = self._chan = None

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
