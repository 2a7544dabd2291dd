"""Test helpers: per-run vhost and database, an event tap, a publisher, a cuttable TCP proxy."""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
from collections.abc import Callable
from typing import Any

import aio_pika
import asyncpg
import orjson

from shared.envelope import CloudEvent
from shared.trust import url_user

ADMIN_DB = "postgresql://postgres@127.0.0.1:5432/postgres"


class Counting:
    """Stands in for a transaction's connection (``tx.conn = Counting(tx.conn, "sla")``) and notes the
    (verb, ``schema`` table) of every statement that reaches the database: what a batch costs."""

    def __init__(self, conn: Any, schema: str) -> None:
        self.conn, self.statements = conn, []
        self._table = re.compile(rf"\b{schema}\.(\w+)")

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.conn, name)
        if name in ("execute", "fetch", "fetchrow", "fetchval", "executemany"):
            async def counted(query: str, *args: Any, **kw: Any) -> Any:
                table = self._table.search(query)
                self.statements.append((query.split()[0].upper(), table.group(1) if table else None))
                return await attr(query, *args, **kw)
            return counted
        return attr


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


def create_vhost(name: str) -> None:
    rabbitmqctl("add_vhost", name)
    rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")


def delete_vhost(name: str) -> None:
    with contextlib.suppress(Exception):
        rabbitmqctl("delete_vhost", name)


async def drop_database(name: str) -> None:
    conn = await asyncpg.connect(ADMIN_DB)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


class Tap:
    """A private queue bound to an exchange; collects what arrives for assertions."""

    def __init__(self, amqp_url: str, exchange: str = "helpdesk.events", keys: tuple[str, ...] = ("#",)) -> None:
        self.url, self.exchange, self.keys = amqp_url, exchange, keys
        self.messages: list[aio_pika.abc.AbstractIncomingMessage] = []
        self._changed = asyncio.Condition()

    async def __aenter__(self) -> Tap:
        self.conn = await aio_pika.connect_robust(self.url)
        ch = await self.conn.channel()
        ex = await ch.declare_exchange(self.exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        self.queue = await ch.declare_queue(exclusive=True, auto_delete=True)
        for key in self.keys:
            await self.queue.bind(ex, routing_key=key)
        await self.queue.consume(self._on, no_ack=True)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.conn.close()

    async def _on(self, msg: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with self._changed:
            self.messages.append(msg)
            self._changed.notify_all()

    def events(self, pred: Callable[[CloudEvent], bool] = lambda e: True) -> list[CloudEvent]:
        out = []
        for m in self.messages:
            with contextlib.suppress(Exception):
                e = CloudEvent.from_bytes(m.body)
                if pred(e):
                    out.append(e)
        return out

    async def wait_events(self, pred: Callable[[CloudEvent], bool], count: int = 1, timeout: float = 15) -> list[CloudEvent]:
        async def enough() -> list[CloudEvent]:
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.events(pred)) >= count)
            return self.events(pred)

        return await asyncio.wait_for(enough(), timeout)

    async def wait_messages(self, pred: Callable[[Any], bool], count: int = 1, timeout: float = 15) -> list[Any]:
        async def enough() -> list[Any]:
            async with self._changed:
                await self._changed.wait_for(lambda: len([m for m in self.messages if pred(m)]) >= count)
            return [m for m in self.messages if pred(m)]

        return await asyncio.wait_for(enough(), timeout)


class Publisher:
    """Publishes persistent messages with publisher confirms (as channels and agent desks do)."""

    def __init__(self, amqp_url: str) -> None:
        self.url = amqp_url

    async def __aenter__(self) -> Publisher:
        self.conn = await aio_pika.connect_robust(self.url)
        self.channel = await self.conn.channel(publisher_confirms=True)
        self._ex: dict[str, aio_pika.abc.AbstractExchange] = {}
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.conn.close()

    async def publish(self, exchange: str, routing_key: str, body: Any, **props: Any) -> None:
        if exchange not in self._ex:
            self._ex[exchange] = await self.channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        props.setdefault("content_type", "application/json")
        props.setdefault("user_id", url_user(self.url))  # consumers act only on a named publisher
        await self._ex[exchange].publish(
            aio_pika.Message(raw, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, **props), routing_key=routing_key
        )


class TcpProxy:
    """A loopback TCP proxy that can be cut (every connection dropped, new ones refused) and restored."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.server: asyncio.base_events.Server | None = None
        self.port = 0
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, port: int = 0) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", port or self.port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def cut(self) -> None:
        if self.server:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    async def restore(self) -> None:
        await self.start(self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            ureader, uwriter = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, uwriter))

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            w.transport.abort()

        await asyncio.gather(pipe(reader, uwriter), pipe(ureader, writer))
        self._writers.discard(writer)
        self._writers.discard(uwriter)


def free_port() -> int:
    """A loopback port nothing listens on now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def serve_http(app: Any, port: int) -> Any:
    """``app`` (its lifespan already running) on a real loopback port, for browsers and HTTP clients;
    stopped on exit. Ctrl-C stays pytest's."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_config=None,
                                           access_log=False))
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
