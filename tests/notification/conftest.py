"""Notification under test, with real peers on loopback: an SMTP server (aiosmtpd), an HTTP server
playing SMS gateway, webhook receiver (verifying the HMAC signature) and group robot, and the real
intake service (contacts)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson
import pytest
import uvicorn
from aiosmtpd.controller import Controller
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared.settings import Settings
from tests.conftest import Running, start_service

WEBHOOK_SECRET = "whsec-test-0123456789"
SMS_TOKEN = "sms-token-test"
TZ = ZoneInfo("Asia/Shanghai")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Peers:
    """What the loopback peers received, and how the SMS gateway should answer each number."""

    http_port: int = 0
    smtp_port: int = 0
    sms: list[dict[str, Any]] = field(default_factory=list)
    sms_plan: dict[str, list[int]] = field(default_factory=dict)  # phone -> statuses to answer, then 200
    sms_always_fail: set[str] = field(default_factory=set)
    sms_calls: dict[str, int] = field(default_factory=dict)
    webhooks: list[dict[str, Any]] = field(default_factory=list)
    webhook_rejected: int = 0
    robot: list[dict[str, Any]] = field(default_factory=list)
    mails: list[EmailMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def wait(self, pred: Callable[[], Any], timeout: float = 15.0) -> Any:
        """Poll a condition on what the peers received (bounded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                got = pred()
            if got:
                return got
            await asyncio.sleep(0.05)
        raise TimeoutError("peers never saw what the test waited for")


def _http_app(peers: Peers) -> Starlette:
    async def sms(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {SMS_TOKEN}":
            return JSONResponse({"error": "bad token"}, status_code=401)
        body = await request.json()
        to = body["to"]
        peers.sms_calls[to] = peers.sms_calls.get(to, 0) + 1
        if to in peers.sms_always_fail:
            return JSONResponse({"error": "gateway down"}, status_code=500)
        plan = peers.sms_plan.get(to)
        if plan:
            return JSONResponse({"error": "busy"}, status_code=plan.pop(0))
        with peers.lock:
            peers.sms.append(body)
        return JSONResponse({"ok": True})

    async def webhook(request: Request) -> Response:
        raw = await request.body()
        ts = request.headers.get("x-helpdesk-timestamp", "")
        sig = request.headers.get("x-helpdesk-signature", "")
        expected = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), ts.encode() + b"." + raw, hashlib.sha256).hexdigest()
        fresh = ts.isdigit() and abs(time.time() - int(ts)) < 300
        if not (fresh and hmac.compare_digest(expected, sig)):
            peers.webhook_rejected += 1
            return JSONResponse({"error": "bad signature"}, status_code=401)
        with peers.lock:
            peers.webhooks.append({"body": orjson.loads(raw), "headers": dict(request.headers)})
        return JSONResponse({"ok": True})

    async def robot(request: Request) -> Response:
        with peers.lock:
            peers.robot.append(await request.json())
        return JSONResponse({"errcode": 0, "errmsg": "ok"})

    return Starlette(routes=[Route("/sms", sms, methods=["POST"]), Route("/webhook", webhook, methods=["POST"]),
                             Route("/robot", robot, methods=["POST"])])


class _Mailbox:
    def __init__(self, peers: Peers) -> None:
        self.peers = peers

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        msg = message_from_bytes(envelope.content, policy=policy.default)
        with self.peers.lock:
            self.peers.mails.append(msg)  # type: ignore[arg-type]
        return "250 OK"


@pytest.fixture(scope="package")
async def peers() -> AsyncIterator[Peers]:
    p = Peers(http_port=free_port(), smtp_port=free_port())
    smtp = Controller(_Mailbox(p), hostname="127.0.0.1", port=p.smtp_port)
    smtp.start()
    server = uvicorn.Server(uvicorn.Config(_http_app(p), host="127.0.0.1", port=p.http_port, log_config=None,
                                           access_log=False, lifespan="off"))
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.02)
    try:
        yield p
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)
        smtp.stop()


def quiet_window(now: datetime) -> tuple[str, str]:
    """Quiet hours that start 6 h from now and last 4 h: the suite's real clock is never inside them."""
    start = (now.astimezone(TZ) + timedelta(hours=6)).replace(second=0, microsecond=0)
    return start.strftime("%H:%M:00"), (start + timedelta(hours=4)).strftime("%H:%M:00")


def rules_toml(p: Peers, quiet: tuple[str, str]) -> str:
    base = f"http://127.0.0.1:{p.http_port}"
    return f"""
[defaults]
language = "zh-CN"
customer_channels = ["sms", "email"]

[quiet_hours]
start = {quiet[0]}
end = {quiet[1]}

[retry]
max_attempts = 3
base_s = 0.05
max_s = 0.2

[rate_limit]
customer = 50
staff = 500
window_s = 600

[channels.log]
type = "log"
[channels.sms]
type = "sms"
url = "{base}/sms"
token = "${{TEST_SMS_TOKEN:-{SMS_TOKEN}}}"
timeout_s = 5
[channels.email]
type = "smtp"
host = "127.0.0.1"
port = {p.smtp_port}
sender = "support@helpdesk.test"
[channels.webhook]
type = "webhook"
url = "{base}/webhook"
secret = "{WEBHOOK_SECRET}"
[channels.webhook_wrong_key]
type = "webhook"
url = "{base}/webhook"
secret = "not-the-shared-secret"
[channels.wecom]
type = "wecom"
url = "{base}/robot?key=test"

[staff.supervisor]
name = "售后主管"
channels = ["wecom"]
[staff.manager]
name = "After-sales manager"
language = "en"
channels = ["email"]
email = "manager@helpdesk.test"
[staff.agent-hook]
name = "Agent Hook"
channels = ["webhook"]
[staff.agent-badkey]
channels = ["webhook_wrong_key"]
[staff.agent-busy]
channels = ["wecom"]
rate_limit = 2
[default_staff]
channels = ["log"]

[[rules]]
event = "ticket.created"
template = "ticket_received"
to = ["customer"]
[[rules]]
event = "ticket.responded"
when = {{ first = true }}
template = "first_response"
to = ["customer"]
[[rules]]
event = "ticket.progressed"
when = {{ visible_to_customer = true }}
template = "progress"
to = ["customer"]
[[rules]]
event = "ticket.resolved"
template = "resolved"
to = ["customer"]
[[rules]]
event = "survey.sent"
template = "survey_invite"
to = ["customer"]
[[rules]]
event = "ticket.routed"
template = "assigned"
to = ["assignee"]
[[rules]]
event = "sla.warning"
template = "sla_warning"
to = ["assignee"]
fallback = ["supervisor"]
[[rules]]
event = "ticket.escalated"
template = "escalated"
to = ["target"]
fallback = ["manager"]
[[rules]]
event = "sla.breached"
template = "sla_breached"
to = ["supervisor"]
[[rules]]
event = "survey.negative"
template = "survey_negative"
to = ["manager"]
urgent = true
"""


@pytest.fixture(scope="package")
async def notification(intake: Running, peers: Peers, tmp_path_factory: pytest.TempPathFactory
                       ) -> AsyncIterator[Running]:
    from services.notification.app import create_app
    from services.notification.config import NotificationSettings

    rules = Path(tmp_path_factory.mktemp("notification")) / "rules.toml"
    rules.write_text(rules_toml(peers, quiet_window(datetime.now(TZ))), encoding="utf-8")
    options = NotificationSettings(rules_file=rules, intake_url="http://intake", worker_poll_s=0.5)
    factory = partial(create_app, options=options, intake_transport=httpx.ASGITransport(app=intake.app))
    async for running in start_service(factory, Settings()):
        yield running
