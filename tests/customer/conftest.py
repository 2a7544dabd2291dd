"""The customer's side under test, every service real: intake (also served on a loopback port, so the
browser opens the very ``progress_url`` the acknowledgement carries), sla (a seconds-long
``next_update`` policy), routing (escalations) and notification (the shipped rules file, log
channels, a worker clock the test can set to a moment inside quiet hours)."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
import tomllib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import orjson
import pytest

from shared.logs import JsonFormatter
from shared.settings import Settings
from tests.support import free_port, serve_http
from tests.conftest import Running, start_service

HERE = Path(__file__).parent
POLICY = HERE / "policy_customer.toml"
SHIPPED_RULES = Path(__file__).parents[2] / "services" / "notification" / "rules.toml"
ROSTER = Path(__file__).parents[2] / "services" / "routing" / "roster.toml"
LINK = re.compile(r"https?://[^\s]+/t/[A-Za-z0-9_-]{43}")


@dataclass
class Public:
    """Intake's public router on a real port."""

    base_url: str
    intake: Running


@pytest.fixture(scope="package")
async def public(intake: Running) -> AsyncIterator[Public]:
    from services.intake.progress import ProgressSettings

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    before = intake.app.state.progress
    intake.app.state.progress = ProgressSettings(base_url=base_url, secret="test-progress-secret",
                                                 callback_every_s=3600, writes_per_window=30)
    try:
        async with serve_http(intake.app, port):
            yield Public(base_url, intake)
    finally:
        intake.app.state.progress = before


@pytest.fixture(scope="package")
def customer_policy(run_env: dict[str, str]) -> AsyncIterator[None]:
    old = os.environ.get("SLA_POLICY_FILE")
    os.environ["SLA_POLICY_FILE"] = str(POLICY)
    yield
    if old is None:
        os.environ.pop("SLA_POLICY_FILE", None)
    else:
        os.environ["SLA_POLICY_FILE"] = old


async def drop_queues(amqp_url: str, *names: str) -> None:
    """Delete a stopped service's queues: left bound, they would pile up the session's later tickets and
    hand that backlog to the next package that starts the service (routing assigns oldest first)."""
    conn = await aio_pika.connect_robust(amqp_url)
    try:
        channel = await conn.channel()
        for name in names:
            await channel.queue_delete(name)
    finally:
        await conn.close()


@pytest.fixture(scope="package")
async def sla(run_env: dict[str, str], drop_db_at_end: None, customer_policy: None) -> AsyncIterator[Running]:
    from services.sla.app import create_app

    async for running in start_service(create_app, Settings(HELPDESK_DB_POOL_MAX=4)):
        yield running
    await drop_queues(run_env["AMQP_URL"], "sla.tickets")


@pytest.fixture(scope="package")
async def routing(run_env: dict[str, str], drop_db_at_end: None) -> AsyncIterator[Running]:
    from services.routing.app import create_app

    async for running in start_service(create_app, Settings()):
        yield running
    await drop_queues(run_env["AMQP_URL"], "routing.tickets", "routing.signals")


@pytest.fixture
async def staffed(routing: Running) -> Running:
    """Routing with the shipped roster at ample capacity and no ticket held, whatever earlier packages
    of the session did to its database (tests/routing sets rosters of its own)."""
    agents = tomllib.loads(ROSTER.read_text(encoding="utf-8"))["agents"]
    async with routing.rt.pool.acquire() as conn:
        await conn.execute("UPDATE routing.tickets SET state = 'released' WHERE state <> 'released'")
        await conn.execute("DELETE FROM routing.agents")
    r = await routing.client.put("/v1/roster", json={"agents": [{**a, "capacity": 1000} for a in agents]})
    assert r.status_code == 200, r.text
    return routing


@dataclass
class WorkerClock:
    """The delivery worker's clock: real time unless a test sets ``fixed``."""

    fixed: datetime | None = None

    def __call__(self) -> datetime:
        return self.fixed or datetime.now(UTC)


class Sent(logging.Handler):
    """What the log channel "sent": each message's log line as the service writes it (JSON, masked)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(JsonFormatter("notification"))
        self.records: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "notification":
            self.records.append(orjson.loads(self.format(record)))

    def of(self, ticket_no: str, template: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.records if r["ticket_no"] == ticket_no and template in (None, r["template"])]

    async def wait(self, ticket_no: str, template: str, timeout: float = 20.0) -> dict[str, Any]:
        for _ in range(int(timeout / 0.05)):
            if found := self.of(ticket_no, template):
                return found[-1]
            await asyncio.sleep(0.05)
        raise AssertionError(f"the log channel sent no {template} for {ticket_no}: {self.of(ticket_no)}")


@dataclass
class Notifier:
    running: Running
    clock: WorkerClock
    sent: Sent = field(default_factory=Sent)

    def set_clock(self, at: datetime | None) -> None:
        self.clock.fixed = at
        self.running.app.state.worker.wake()


@pytest.fixture(scope="package")
async def notification(public: Public, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Notifier]:
    """Notification with the shipped rules file as it is (log channels: what they send is logged)."""
    from services.notification.app import create_app
    from services.notification.config import NotificationSettings

    options = NotificationSettings(rules_file=SHIPPED_RULES, intake_url="http://intake", worker_poll_s=0.5)
    clock = WorkerClock()

    def factory(settings: Settings):  # noqa: ANN202
        app = create_app(settings, options=options, intake_transport=httpx.ASGITransport(app=public.intake.app))
        app.state.worker.clock = clock
        return app

    sent = Sent()
    channel_log = logging.getLogger("services.notification.channels")
    channel_log.addHandler(sent)
    old_level = channel_log.level
    channel_log.setLevel(logging.INFO)
    try:
        async for running in start_service(factory, Settings()):
            yield Notifier(running, clock, sent)
        await drop_queues(os.environ["AMQP_URL"], "notification.events", "notification.customers")
    finally:
        channel_log.removeHandler(sent)
        channel_log.setLevel(old_level)


def random_phone() -> str:
    return f"139{random.randrange(10**8):08d}"


def ticket_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "channel": "web",
        "external_id": f"web-{uuid.uuid4().hex}",
        # a phone of its own per ticket: notification's rate limit counts per customer (customer_key)
        "customer": {"name": "韩梅梅", "id": f"cust-{uuid.uuid4().hex[:12]}", "phone": random_phone(),
                     "language": "zh-CN"},
        "subject": "设备无法启动",
        "description": "打印机开机后指示灯闪烁，无法打印",
        "urgency": "normal",
    }
    body.update(over)
    return body


async def new_ticket(intake: Running, **over: Any) -> str:
    r = await intake.client.post("/v1/tickets", json=ticket_body(**over))
    assert r.status_code == 201, r.text
    return r.json()["ticket_no"]


async def command(intake: Running, no: str, action: str, **body: Any) -> dict[str, Any]:
    r = await intake.client.post(f"/v1/tickets/{no}/{action}", json={"actor": "eng-wang", **body})
    assert r.status_code == 200, r.text
    return r.json()


async def until(pred: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    """Poll an async or plain condition (bounded); the value it returned."""
    for _ in range(int(timeout / 0.05)):
        got = pred()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def link_of(text: str) -> str:
    m = LINK.search(text or "")
    assert m, f"no progress link in {text!r}"
    return m.group(0)
