"""The services' AMQP connections, with the frames of one event-loop turn written in one system call.

aiormq writes every frame it sends with its own ``write`` on the socket: a publish, an ack, a
``basic.qos``. When the outbox relay hands a committed batch's events to the broker, that is one
system call per event, and a native profile (``make bench-e2e BENCH_ARGS="--profile DIR --native"``)
put 9–14 % of each service's CPU in those calls. ``connect_robust`` opens aio-pika's robust connection
with aiormq's own extension point (a ``TransportFactory``) handing it a :class:`CoalescingWriter`:
what is written during one turn of the event loop is joined and written once, at the end of that turn
(``loop.call_soon``), or, while each turn brings more (aiormq queues a channel's publishes one a turn
behind its lock), once a turn brings none — at most ``MAX_WAIT_S`` (5 ms) after the first frame, so a
busy loop's long turns hold no frame longer than that. The frames keep their order; ``drain``,
``close`` and ``write_eof`` write what is pending first; nothing else about the connection changes
(TLS included).
"""

from __future__ import annotations

import asyncio
from typing import Any

import aio_pika
import aiormq.connection
from yarl import URL


MAX_WAIT_S = 0.005  # a frame waits at most this long for others to join it (a bound of 32 turns instead,
# unbounded in time on a busy loop, took the routed p99 at 50 tickets/s from 24-32 ms to 63-201 ms)
MAX_BYTES = 256 * 1024  # or until this much is pending


class CoalescingWriter:
    """An ``asyncio.StreamWriter`` whose writes during one event-loop turn leave in one ``write``.
    ``frames``/``writes``: how many writes aiormq asked for, how many reached the socket."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._pending: list[bytes] = []
        self._loop = asyncio.get_running_loop()
        self._size, self._since, self._fresh = 0, 0.0, False
        self.frames = self.writes = 0

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._since = self._loop.time()
            self._loop.call_soon(self._turn)
        self._pending.append(data)
        self._size += len(data)
        self._fresh = True
        self.frames += 1

    def _turn(self) -> None:
        """End of a loop turn: while the last turn brought frames (publishes queued one a turn behind the
        channel's lock), wait one turn more — unless the first pending frame has waited ``MAX_WAIT_S``
        (a busy loop's turns are long: then it goes now, as without joining) or ``MAX_BYTES`` are pending."""
        if (self._fresh and self._size < MAX_BYTES
                and self._loop.time() - self._since < MAX_WAIT_S):
            self._fresh = False
            self._loop.call_soon(self._turn)
            return
        self.flush()

    def flush(self) -> None:
        """Write what is pending now (once per turn by itself; before a drain, a close, an EOF)."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        self._size, self._fresh = 0, False
        if self._writer.is_closing():
            return  # the connection is going: aiormq's reader sees it and the robust connection reconnects
        self._writer.write(pending[0] if len(pending) == 1 else b"".join(pending))
        self.writes += 1

    async def drain(self) -> None:
        self.flush()
        await self._writer.drain()

    def write_eof(self) -> None:
        self.flush()
        self._writer.write_eof()

    def close(self) -> None:
        self.flush()
        self._writer.close()

    def __getattr__(self, name: str) -> Any:  # is_closing, can_write_eof, wait_closed, transport, ...
        return getattr(self._writer, name)


class CoalescingTransport(aiormq.connection.TransportFactory):
    """aiormq's TCP or TLS transport (by the URL's scheme), its writer a :class:`CoalescingWriter`
    (``writer``: the current connection's, after a reconnect the new one's)."""

    writer: CoalescingWriter | None = None

    async def create(self, url: URL, **kwargs: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        base = (aiormq.connection.TLSTransportFactory() if url.scheme == "amqps"
                else aiormq.connection.TCPTransportFactory())
        reader, writer = await base.create(url, **kwargs)
        self.writer = CoalescingWriter(writer)
        return reader, self.writer  # type: ignore[return-value]


class CoalescingConnection(aio_pika.RobustConnection):
    """aio-pika's robust connection (reconnects, restores its channels) over a :class:`CoalescingTransport`
    (aio-pika passes on only the parameters it knows, so the factory is added to them here)."""

    def __init__(self, url: Any, loop: asyncio.AbstractEventLoop | None = None, **kwargs: Any) -> None:
        super().__init__(url, loop, **kwargs)
        self.kwargs["transport_factory"] = CoalescingTransport()


async def connect_robust(url: str) -> aio_pika.abc.AbstractRobustConnection:
    """``aio_pika.connect_robust(url)``, its frames joined as above."""
    return await aio_pika.connect_robust(url, connection_class=CoalescingConnection)
