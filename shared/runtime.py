"""One composition root per service: settings, pool, broker, outbox relay, FastAPI app.

A service builds a ``Runtime`` in ``create_app``; nothing connects until the app's lifespan runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from fastapi import FastAPI
import aio_pika
from fastapi_offline import FastAPIOffline
from faststream.rabbit import Channel, RabbitBroker
from faststream.specification import AsyncAPI

from shared import amqpwire, batching, db, gcpolicy, openapi, production, topology, trust
from shared.consumer import Consumer
from shared.dueloop import DueLoop, Every
from shared.events import EventData
from shared.http import BodyLimit, install_error_handlers, install_ops_routes
from shared.outbox import Relay
from shared.settings import Settings
from shared.unit import EmittedHook, Tx, Unit, Within, open_unit

log = logging.getLogger(__name__)
Hook = Callable[["Runtime"], Awaitable[None]]


def build_broker(settings: Settings, service: str) -> RabbitBroker:
    """The service's publisher (dead letters, tests) whose unroutable mandatory publishes raise. It
    consumes nothing: queues are consumed by ``shared.consumer`` on the runtime's aio-pika connection."""
    return RabbitBroker(
        settings.amqp_url,
        default_channel=Channel(prefetch_count=settings.prefetch, on_return_raises=True),
        logger=logging.getLogger(f"faststream.{service}"),
        log_level=logging.DEBUG,
        graceful_timeout=15.0,
        fail_fast=True,
    )


def make_app(settings: Settings, **kwargs: Any) -> FastAPI:
    """A FastAPI app whose ``/docs`` (Swagger UI, served from the package: no CDN), ``/redoc`` and
    ``/openapi.json`` exist only with ``HELPDESK_DOCS=true``; the document itself is always complete
    (``shared.openapi``: every status each route answers)."""
    if settings.docs:
        app = FastAPIOffline(**kwargs)
    else:
        app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, **kwargs)
    openapi.install(app)
    return app


STOP_TIMEOUT_S = 20.0  # each shutdown step; longer than the broker's graceful_timeout (15 s)


async def _bounded(step: Awaitable[None], what: str) -> None:
    """A shutdown step that may not hang the stop: after ``STOP_TIMEOUT_S`` it is abandoned, logged."""
    try:
        await asyncio.wait_for(step, STOP_TIMEOUT_S)
    except TimeoutError:
        log.warning("shutdown step timed out", extra={"step": what})


@dataclass
class Runtime:
    """A service's pool, broker, background loops and hooks; ``unit()`` opens a unit of work."""

    service: str
    settings: Settings
    migrations: Path
    broker: RabbitBroker = field(init=False)
    spec: RabbitBroker = field(init=False)  # never connected: what the AsyncAPI document describes
    pool: asyncpg.Pool = field(init=False)
    amqp: aio_pika.abc.AbstractRobustConnection | None = field(init=False, default=None)  # the consumers'
    consumers: list[Consumer] = field(default_factory=list, init=False)
    relay: Relay | None = field(init=False, default=None)
    on_start: list[Hook] = field(default_factory=list)
    on_stop: list[Hook] = field(default_factory=list)
    bindings: list[tuple[Any, Any, list[str]]] = field(default_factory=list)
    metrics_hooks: list[Hook] = field(default_factory=list)
    on_emitted: EmittedHook | None = None  # the service's own write of what it emits (intake's timeline)
    loops: list[DueLoop] = field(default_factory=list, init=False)  # background loops (``add_loop``)
    outbox: bool = True

    def __post_init__(self) -> None:
        production.check_service(self.settings, self.service)  # HELPDESK_ENV=production: no default secrets
        self.broker = build_broker(self.settings, self.service)
        self.spec = RabbitBroker(self.settings.amqp_url)
        trust.register(self.broker, trust.Trust(trust.users_for(self.settings),
                                                publisher=trust.url_user(self.settings.amqp_url)))
        if self.outbox:
            self.relay = Relay(self)
            self.add_loop(self.relay)

    @contextlib.asynccontextmanager
    async def transaction(self, *, batch_ids: Sequence[str | None] = ()) -> AsyncIterator[Tx]:
        """A transaction whose staged writes are flushed before it commits; after-commit effects run
        once it has. ``batch_ids``: the message ids of a batch's deliveries (inbox prefetch)."""
        lease_s = self.relay.lease_s if self.relay is not None and self.settings.publish_on_commit else 0.0
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                tx = Tx(conn, self.service, on_emitted=self.on_emitted, batch_ids=batch_ids, lease_s=lease_s)
                yield tx
                await tx.flush()
            if tx.leased:  # published by this process now (the relay takes them if it cannot)
                self.relay.hand(tx.leased)  # type: ignore[union-attr]
            tx.committed()

    def unit(self, *, consumer: str | None = None, event: Any = None, message_id: str | None = None,
             within: Within = None) -> contextlib.AbstractAsyncContextManager[Unit]:
        """A unit of work: its own transaction, or ``within`` a batch's (a ``Tx``) or a caller's (a ``Unit``).
        With ``consumer`` and a message id (``event.id`` or ``message_id``) it claims the inbox:
        ``u.duplicate`` is True when that consumer already processed the message."""
        key = message_id or (getattr(event, "id", None) if event is not None else None)
        return open_unit(self.transaction, consumer=consumer, message_id=key, within=within)

    def add_loop(self, loop: DueLoop) -> None:
        """A background loop (``shared.dueloop.DueLoop``, which reads ``rt.pool`` when it runs): started
        after the consumers and the ``on_start`` hooks, stopped (bounded) before them and the broker."""
        self.loops.append(loop)

    def every(self, interval_s: float, hook: Hook, *, name: str) -> Every:
        """Run ``hook(rt)`` every ``interval_s`` seconds as a background loop (``shared.dueloop.Every``):
        the first run one interval after the start; a failure is logged and retried with backoff."""
        loop = Every(interval_s, lambda: hook(self), name=name)
        self.add_loop(loop)
        return loop

    def batching(self, *, linger: bool = True, records: bool = False,
                 prepare: batching.Prepare | None = None) -> batching.Batching | None:
        """Batched consumption for a queue whose handler keeps no order across messages (``None``: off).
        ``linger``: a batch not yet full waits ``HELPDESK_BATCH_LINGER_MS`` for more (False on the queues
        a ticket's first hops wait on, where latency is the promise); ``records``: a queue that only
        records (review's facts, intake's timeline, survey's schedule) waits ``HELPDESK_BATCH_LINGER_RECORDS_MS`` instead.
        ``prepare(msgs, tx)``: the batch's look-ups in one go, before its handlers
        (``shared.batching.Prepare``)."""
        if self.settings.batch_max <= 1:
            return None
        linger_ms = self.settings.batch_linger_records_ms if records else self.settings.batch_linger_ms
        return batching.Batching(self.transaction, max_size=self.settings.batch_max,
                                 parallel=self.settings.batch_parallel,
                                 linger_s=linger_ms / 1000 if linger else 0.0, prepare=prepare)

    async def db_ok(self) -> bool:
        return await self.pool.fetchval("SELECT 1") == 1

    async def broker_ok(self) -> bool:
        consuming = self.amqp is not None and not self.amqp.is_closed  # the consumers' own connection
        return consuming and await self.broker.ping(timeout=2.0)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Runtime]:
        """Bootstrap and migrate the schema, connect, declare topology, start consumers and relay."""
        if self.settings.bootstraps:
            await db.bootstrap(self.settings, self.service)
        self.pool = await db.create_pool(self.settings, self.service)
        try:
            async with self.pool.acquire() as conn:
                await db.migrate(conn, self.service, self.migrations)
            await self.broker.connect()
            await topology.declare_all(self.broker, self.settings)
            for queue, exchange, keys in self.bindings:
                await topology.bind(self.broker, queue, exchange, keys)
            await self.broker.start()
            self.amqp = await amqpwire.connect_robust(self.settings.amqp_url)  # a turn's frames in one write
            for consumer in self.consumers:
                await consumer.start(self.amqp)
            for hook in self.on_start:
                await hook(self)
            for loop in self.loops:
                loop.start()
            log.info("service started", extra={"service": self.service})
            gcpolicy.started()  # a service process: what the start made is frozen (``shared.gcpolicy``)
            yield self
        finally:
            for consumer in self.consumers:
                await _bounded(consumer.stop(), f"consumer {consumer.queue.name}")
            for loop in reversed(self.loops):
                await _bounded(loop.stop(), loop.name)
            for hook in reversed(self.on_stop):
                with contextlib.suppress(Exception):
                    await hook(self)
            if self.amqp is not None:
                with contextlib.suppress(Exception):
                    await _bounded(self.amqp.close(), "consumers' connection")
            with contextlib.suppress(Exception):
                await _bounded(self.broker.stop(), "broker")
            try:
                await asyncio.wait_for(self.pool.close(), STOP_TIMEOUT_S)
            except TimeoutError:  # a connection never released: drop them all rather than hang the stop
                log.warning("pool did not close in time; terminating its connections")
                self.pool.terminate()

    def document_publications(self, published: Sequence[tuple[type[EventData], str]]) -> None:
        """Declare what the outbox relay publishes, so the AsyncAPI document lists it (the relay itself
        publishes raw CloudEvents; ``data`` has the schema shown, plus ``ticket_no`` and ``seq``)."""
        for model, description in published:
            self.spec.publisher(exchange=topology.EVENTS, routing_key=model.type, schema=model, title=model.type,
                                  persist=True,
                                  description=f"CloudEvents envelope (helpdesk.events); data: {description}")

    def asyncapi(self, description: str) -> AsyncAPI:
        return AsyncAPI(self.spec, title=f"helpdesk {self.service}", version="1.0.0", description=description)

    def fastapi(self, *, title: str, description: str, version: str = "1.0.0") -> FastAPI:
        """The service's HTTP app: lifespan runs ``running()``; ops routes and error shapes installed."""

        @contextlib.asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            async with self.running():
                yield

        app = make_app(self.settings, title=title, description=description, version=version, lifespan=lifespan)
        app.state.runtime = self
        install_error_handlers(app)
        install_ops_routes(
            app, {"database": self.db_ok, "broker": self.broker_ok},
            [lambda hook=hook: hook(self) for hook in self.metrics_hooks],
        )
        app.add_middleware(BodyLimit, max_bytes=self.settings.max_body_bytes)
        spec = self.asyncapi(description)

        @app.get("/asyncapi.json", tags=["operations"], include_in_schema=False)
        async def asyncapi() -> Any:
            return spec.to_specification().to_jsonable()

        return app
