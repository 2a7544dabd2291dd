"""The harness's stack (``bench_e2e``, ``chaos``): the five services as real processes that can be
killed and restarted, an event recorder, a dead-letter counter, and broker/database probes.

Services that do not exist yet (``services/<name>/__main__.py`` missing) are skipped: the
harnesses grow with the repository.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import httpx
import orjson

from shared import topology
from shared.run import ORDER, available
from shared.settings import Settings
from shared.trust import url_user

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ORDER
# Customer-facing notification templates (notification's rules.toml); anything else goes to staff.
CUSTOMER_TEMPLATES = {"ticket_received", "first_response", "progress", "resolved", "survey_invite"}
# The events the harnesses follow (binding only these keeps the recorder's own CPU small).
FOLLOWED = ("ticket.created", "ticket.routed", "ticket.resolved", "sla.started", "notification.sent")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def skipped() -> list[str]:
    return [s for s in ORDER if s not in available()]


def bench_rules_file(directory: Path) -> Path | None:
    """notification's shipped rules with quiet hours off, so a run at night still notifies at once.
    The retry policy stays as shipped (5 attempts, 5 s doubling): faster retries would make a send
    give up within a service's restart."""
    src = ROOT / "services" / "notification" / "rules.toml"
    if not src.exists():
        return None
    text = re.sub(r"(\[quiet_hours\][^\[]*?enabled\s*=\s*)true", r"\1false", src.read_text(encoding="utf-8"))
    out = directory / "rules.toml"
    out.write_text(text, encoding="utf-8")
    return out


class Stack:
    """Every available service as its own ``python -m services.<name>`` process on a free port."""

    def __init__(self, env: dict[str, str], names: list[str] | None = None, *, extra_env: dict[str, str] | None = None,
                 log_dir: Path | None = None) -> None:
        self.names = names or available()
        self.ports = {name: free_port() for name in self.names}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="helpdesk-harness-"))
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1", **(extra_env or {})}
        for name, port in self.ports.items():
            self.env[f"{name.upper()}_PORT"] = str(port)
        if "intake" in self.ports:
            self.env["NOTIFICATION_INTAKE_URL"] = f"http://127.0.0.1:{self.ports['intake']}"
        if "survey" in self.ports:
            self.env["SURVEY_BASE_URL"] = f"http://127.0.0.1:{self.ports['survey']}"
        if "notification" in self.names and "NOTIFICATION_RULES_FILE" not in self.env:
            rules = bench_rules_file(self.log_dir)
            if rules:
                self.env["NOTIFICATION_RULES_FILE"] = str(rules)
        self.kills: dict[str, int] = defaultdict(int)
        self.failed_starts: list[str] = []

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def spawn(self, name: str) -> None:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 (owned by the child)
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", f"services.{name}"], cwd=ROOT, env=self.env, stdout=log, stderr=log,
        )
        log.close()

    async def healthy(self, name: str, client: httpx.AsyncClient | None = None) -> bool:
        own = client is None
        client = client or httpx.AsyncClient()
        try:
            return (await client.get(f"{self.url(name)}/healthz", timeout=3)).status_code == 200
        except httpx.HTTPError:
            return False
        finally:
            if own:
                await client.aclose()

    async def wait_healthy(self, name: str, timeout: float = 90) -> float:
        start = time.monotonic()
        async with httpx.AsyncClient() as client:
            while not await self.healthy(name, client):
                proc = self.procs[name]
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited ({proc.returncode}): {self.last_error(name)}")
                if time.monotonic() - start > timeout:
                    raise RuntimeError(f"{name} not healthy after {timeout}s; see {self.log_dir / (name + '.log')}")
                await asyncio.sleep(0.2)
        return time.monotonic() - start

    def last_error(self, name: str) -> str:
        """The last ``SomethingError: ...`` line of the service's log (its JSON lines embed tracebacks)."""
        path = self.log_dir / f"{name}.log"
        found = re.findall(r"(\w+(?:Error|Exception): [^\n\\\"]{0,160})", path.read_text(errors="replace"))
        return found[-1] if found else f"see {path}"

    async def start(self) -> None:
        # intake first: the others need its exchanges' peers only through the broker, but
        # bootstrapping the database one at a time avoids CREATE DATABASE races in the log.
        for name in self.names:
            self.spawn(name)
            if name == self.names[0]:
                await self.wait_healthy(name)
        for name in self.names:
            await self.wait_healthy(name)

    async def kill9(self, name: str) -> None:
        proc = self.procs[name]
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        await asyncio.to_thread(proc.wait)
        self.kills[name] += 1

    async def restart(self, name: str, attempts: int = 5) -> float:
        """Start ``name`` again; like ``make run``'s supervisor, retry a start that fails (e.g. the
        database refusing connections for a moment) up to ``attempts`` times."""
        start = time.monotonic()
        for attempt in range(1, attempts + 1):
            self.spawn(name)
            try:
                await self.wait_healthy(name)
                return time.monotonic() - start
            except RuntimeError as exc:
                self.failed_starts.append(f"{name}: {exc}")
                if attempt == attempts:
                    raise
                await asyncio.sleep(2)
        raise AssertionError("unreachable")

    async def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                await asyncio.to_thread(proc.wait, 20)
            except subprocess.TimeoutExpired:
                proc.kill()

    def pid(self, name: str) -> int:
        return self.procs[name].pid


@dataclass
class Seen:
    """What the recorder saw of one event id."""

    type: str
    ticket_no: str
    key: str  # metric for sla.*, template for notification.*, reason for ticket.routed, else ""
    sig: str  # what the event says (sla.started: due_at + policy), to tell a re-announcement from a copy
    first_at: float
    copies: int = 1


@dataclass
class Recorder:
    """A queue on ``helpdesk.events`` noting every followed event.

    ``durable`` (chaos): a durable queue, each delivery acked, so it survives a broker restart. Not durable
    (the benchmarks): a transient, exclusive queue consumed without acknowledgements, so the instrument
    weighs on the broker it measures as little as it can (no disk, no ack frames)."""

    amqp_url: str
    keys: tuple[str, ...] = FOLLOWED
    durable: bool = True
    queue_name: str = field(default_factory=lambda: f"harness.events.{os.getpid()}.{time.monotonic_ns()}")
    events: dict[str, Seen] = field(default_factory=dict)
    by_ticket: dict[tuple[str, str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    first: dict[tuple[str, str], float] = field(default_factory=dict)  # (ticket_no, stage) -> first arrival
    ticket_of: dict[str, str] = field(default_factory=dict)  # external_id -> ticket_no
    undecodable: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def __aenter__(self) -> Recorder:
        self.conn = await aio_pika.connect_robust(self.amqp_url)
        ch = await self.conn.channel()
        await ch.set_qos(prefetch_count=1000)
        ex = await ch.declare_exchange("helpdesk.events", aio_pika.ExchangeType.TOPIC, durable=True)
        self.queue = await ch.declare_queue(self.queue_name, durable=self.durable, exclusive=not self.durable)
        for key in self.keys:
            await self.queue.bind(ex, routing_key=key)
        self.tag = await self.queue.consume(self._on, no_ack=not self.durable)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        with contextlib.suppress(Exception):
            await self.queue.cancel(self.tag)
            await self.queue.delete(if_unused=False, if_empty=False)
        await self.conn.close()

    async def _on(self, msg: aio_pika.abc.AbstractIncomingMessage) -> None:
        now = time.perf_counter()
        try:
            event = orjson.loads(msg.body)
            data, etype, eid = event["data"], event["type"], event["id"]
            ticket_no = data["ticket_no"]
        except Exception:  # noqa: BLE001 (counted, never fatal)
            self.undecodable += 1
            await self._settle(msg)
            return
        seen = self.events.get(eid)
        if seen is not None:
            seen.copies += 1
        else:
            key = data.get("metric") or data.get("template") or ""
            if etype == "ticket.routed":
                key = data.get("reason") or "created"
            sig = f"{data.get('due_at')}|{data.get('policy')}" if etype == "sla.started" else ""
            self.events[eid] = Seen(etype, ticket_no, key, sig, now)
            self.by_ticket[(ticket_no, etype, key)].add(eid)
            if etype == "ticket.created" and data.get("external_id"):
                self.ticket_of[data["external_id"]] = ticket_no
            stage = etype
            if etype == "notification.sent":
                stage = "notification.customer" if key in CUSTOMER_TEMPLATES else "notification.staff"
            self.first.setdefault((ticket_no, stage), now)
        self.changed.set()
        await self._settle(msg)

    async def _settle(self, msg: aio_pika.abc.AbstractIncomingMessage) -> None:
        if self.durable:
            await msg.ack()

    def count(self, ticket_no: str, etype: str, key: str = "") -> int:
        return len(self.by_ticket.get((ticket_no, etype, key), ()))

    def distinct(self, ticket_no: str, etype: str, key: str = "") -> int:
        """How many different things were said (events with equal ``sig`` are the same fact)."""
        return len({self.events[i].sig for i in self.by_ticket.get((ticket_no, etype, key), ())})

    def reached(self, stage: str, tickets: list[str]) -> int:
        return sum(1 for t in tickets if (t, stage) in self.first)


@dataclass
class DeadLetters:
    """A consumer on ``helpdesk.dead-letters``: every dead letter with its reason, by message id."""

    amqp_url: str
    by_message_id: dict[str, str] = field(default_factory=dict)  # message id -> reason ("" if none)
    total: int = 0
    without_reason: int = 0
    seen: list[tuple[str, str, str]] = field(default_factory=list)  # (message id, "queue key", reason)

    async def __aenter__(self) -> DeadLetters:
        self.conn = await aio_pika.connect_robust(self.amqp_url)
        await self._consume()
        self._watch = asyncio.create_task(self._watchdog())
        return self

    async def _consume(self) -> None:
        self.channel = await self.conn.channel()
        await self.channel.set_qos(prefetch_count=500)
        await self.channel.declare_exchange("helpdesk.dlx", aio_pika.ExchangeType.TOPIC, durable=True)
        # Declared (with its TTL and length cap) and bound as the services do, then consumed.
        await topology.declare_dead_letter_queue(self.amqp_url, Settings())
        queue = await self.channel.declare_queue("helpdesk.dead-letters", passive=True)
        await queue.consume(self._on)

    async def _watchdog(self) -> None:
        """After a broker restart the robust channel may come back without its consumer (the quorum
        queue had no leader yet when it was restored): look every 2 s and consume again if so."""
        while True:
            await asyncio.sleep(2)
            try:
                ch = await self.conn.channel()
                try:
                    q = await ch.declare_queue("helpdesk.dead-letters", passive=True)
                    consumers = q.declaration_result.consumer_count
                finally:
                    await ch.close()
                if consumers == 0:
                    with contextlib.suppress(Exception):
                        await self.channel.close()
                    await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001,S112 - the broker is down: look again later
                continue

    async def __aexit__(self, *exc: Any) -> None:
        self._watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._watch
        await self.conn.close()

    async def _on(self, msg: aio_pika.abc.AbstractIncomingMessage) -> None:
        reason = str((msg.headers or {}).get("x-helpdesk-reason") or "")
        self.total += 1
        if not reason:
            self.without_reason += 1
        if msg.message_id:
            self.by_message_id[msg.message_id] = reason
        where = f"{(msg.headers or {}).get('x-helpdesk-queue') or '?'} {msg.routing_key or ''}"
        self.seen.append((msg.message_id or "", where, re.sub(r"\d{8,}", "<n>", reason)))
        await msg.ack()


def list_queues(vhost: str) -> list[dict[str, Any]]:
    """Every queue of ``vhost`` with ready/unacked counts and consumers (rabbitmqctl, no plugin needed).
    Streams (the event log ``helpdesk.events.log``) are left out: a stream keeps its messages by design
    and is read on demand, so "messages left, no consumer" is its normal state."""
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "--formatter", "json",
         "name", "messages_ready", "messages_unacknowledged", "consumers", "type"],
        check=True, capture_output=True, timeout=60, text=True,
    ).stdout
    return [q for q in orjson.loads(out or "[]") if q.get("type") != "stream"]


async def outbox_unsent(database_url: str, schemas: list[str]) -> dict[str, int]:
    conn = await asyncpg.connect(database_url)
    try:
        out = {}
        for schema in schemas:
            with contextlib.suppress(asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
                out[schema] = await conn.fetchval(f"SELECT count(*) FROM {schema}.outbox WHERE sent_at IS NULL")
        return out
    finally:
        await conn.close()


class IntakePublisher:
    """Publishes to ``helpdesk.intake`` / ``helpdesk.commands`` with confirms, retrying through outages."""

    def __init__(self, amqp_url: str, window: int = 256) -> None:
        self.url, self.window = amqp_url, window
        self.retries = 0

    async def __aenter__(self) -> IntakePublisher:
        self.conn = await aio_pika.connect_robust(self.url)
        self.ch = await self.conn.channel(publisher_confirms=True)
        self.ex = {
            name: await self.ch.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)
            for name in ("helpdesk.intake", "helpdesk.commands")
        }
        self._slots = asyncio.Semaphore(self.window)
        self._pending: set[asyncio.Task[None]] = set()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.flush()
        await self.conn.close()

    async def _send(self, exchange: str, key: str, body: bytes, message_id: str | None, deadline: float) -> None:
        try:
            while True:
                try:
                    await asyncio.wait_for(self.ex[exchange].publish(
                        aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                         content_type="application/json", message_id=message_id,
                                         user_id=url_user(self.url)),
                        routing_key=key), 15)
                    return
                except Exception:
                    # broker restarting / nack: the same body again (external_id makes it idempotent)
                    self.retries += 1
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.5)
        finally:
            self._slots.release()

    async def publish(self, exchange: str, key: str, body: bytes, message_id: str | None = None) -> None:
        """Queue a publish; at most ``window`` unconfirmed at a time."""
        await self._slots.acquire()
        task = asyncio.create_task(self._send(exchange, key, body, message_id, time.monotonic() + 300))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def flush(self) -> None:
        if self._pending:
            await asyncio.gather(*list(self._pending))


def external_id(prefix: str) -> str:
    """A unique external id with no digit run: privacy masks phone-like runs in events (an all-digit
    hex id would be masked in ``ticket.created`` and its ticket never matched)."""
    return f"{prefix}-{uuid.uuid4().hex[:12].translate(_NO_DIGITS)}"


_NO_DIGITS = str.maketrans("0123456789", "ghijklmnop")


def ticket_body(ext: str, i: int, channel: str = "web") -> bytes:
    """A valid intake message with a phone (so notification has a customer to tell)."""
    return orjson.dumps({
        "channel": channel, "external_id": ext,
        "customer": {"name": "压测客户", "tier": "vip" if i % 10 == 0 else "standard",
                     "phone": f"138{i % 100_000_000:08d}"},
        "subject": ("设备无法启动", "申请退款", "物流太慢", "请问如何设置")[i % 4],
        "description": f"harness ticket {i}",
    })
