"""A scraped helpdesk for the dashboard test: every service that exists runs as a process in a vhost
and database of its own, a real Prometheus (Debian's ``prometheus``) scrapes them every second, and
a scenario produces every kind of fact the dashboards show (tickets on several channels and
categories, routing, responses, resolutions first-contact or not, SLA clocks met and breached,
surveys answered satisfied or not, a dead letter, redeliveries)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from scripts import harness
from shared.run import ORDER
from tests import support

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules"
API_KEY = "bench-secret"

# (channel, subject, kind, urgency, vip): several channels, categories and priorities
TICKETS = [
    ("phone", "生产线停机，设备无法启动", None, "urgent", False),
    ("chat", "请问定时开机怎么设置", None, "normal", False),
    ("email", "The printer shows an error and stopped working", None, "normal", True),
    ("app", "快递还没到，物流三天没更新", None, "normal", False),
    ("wechat", "我要退款，商品不想要了", None, "normal", False),
    ("web", "建议增加夜间模式", None, "low", False),
    ("phone", "客服态度很差，我要投诉", None, "normal", False),
    ("chat", "屏幕有划痕，质量问题", None, "normal", False),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def present_services() -> list[str]:
    return [s for s in ORDER if (ROOT / "services" / s / "__main__.py").exists()]


def prometheus_binary() -> str:
    found = shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)
    if not found:
        raise RuntimeError("prometheus is not installed: apt-get install prometheus")
    return found


def scrape_config(ports: dict[str, int]) -> dict[str, Any]:
    """The deploy/prometheus/prometheus.yml shape (job "helpdesk", label ``service``), on loopback ports."""
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
        "rule_files": [str(RULES / "*.yml")],
        "scrape_configs": [{
            "job_name": "helpdesk",
            "static_configs": [{"targets": [f"127.0.0.1:{port}"], "labels": {"service": name}}
                               for name, port in ports.items()],
        }],
    }


@dataclass
class Prometheus:
    url: str
    started: float
    proc: subprocess.Popen[bytes]

    async def query(self, client: httpx.AsyncClient, expr: str) -> list[dict[str, Any]]:
        r = await client.get(f"{self.url}/api/v1/query", params={"query": expr})
        body = r.json()
        if body.get("status") != "success":
            raise AssertionError(f"query failed: {body.get('error')}: {expr}")
        return body["data"]["result"]

    async def scraped_since(self, client: httpx.AsyncClient, when: float, timeout: float = 20) -> None:
        """Wait until every target has been scraped (healthy) after ``when`` (epoch seconds)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            targets = (await client.get(f"{self.url}/api/v1/targets")).json()["data"]["activeTargets"]
            if targets and all(t["health"] == "up" and _epoch(t["lastScrape"]) > when for t in targets):
                return
            await asyncio.sleep(0.3)
        raise TimeoutError("Prometheus did not scrape every target in time")


def _epoch(rfc3339: str) -> float:
    text = rfc3339.replace("Z", "+00:00")
    head, _, rest = text.partition(".")
    if rest:  # Python wants at most 6 fractional digits
        frac, tz = rest[: len(rest) - 6], rest[len(rest) - 6:]
        text = f"{head}.{frac[:6]}{tz}"
    return datetime.fromisoformat(text).timestamp()


@contextlib.asynccontextmanager
async def prometheus(ports: dict[str, int]) -> AsyncIterator[Prometheus]:
    tmp = Path(tempfile.mkdtemp(prefix="helpdesk-prom-"))
    (tmp / "prometheus.yml").write_text(json.dumps(scrape_config(ports), indent=2))  # YAML accepts JSON
    port = free_port()
    proc = subprocess.Popen(
        [prometheus_binary(), f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn", "--storage.tsdb.retention.time=1h"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:
            deadline = time.monotonic() + 30
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{url}/-/ready")).status_code == 200:
                        break
                if proc.poll() is not None:
                    raise RuntimeError(f"prometheus exited: {proc.stderr.read().decode()[-2000:]}")
                if time.monotonic() > deadline:
                    raise TimeoutError("prometheus did not become ready")
                await asyncio.sleep(0.2)
        yield Prometheus(url, time.time(), proc)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class Scenario:
    """Drives the services over HTTP and AMQP, and waits on their events (bounded waits only)."""

    env: dict[str, str]
    ports: dict[str, int]
    http: httpx.AsyncClient
    tap: support.Tap
    created: list[str] = field(default_factory=list)

    def url(self, service: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    async def create(self, channel: str, subject: str, kind: str | None, urgency: str, vip: bool,
                     received_at: datetime | None = None) -> str:
        body: dict[str, Any] = {"channel": channel, "external_id": uuid.uuid4().hex, "subject": subject,
                                "urgency": urgency,
                                "customer": {"name": "王女士", "id": f"c-{uuid.uuid4().hex[:6]}",
                                             "phone": "13800138000", "email": "wang@example.com",
                                             "tier": "vip" if vip else "standard"}}
        if kind:
            body["kind"] = kind
        if received_at:
            body["received_at"] = received_at.isoformat()
        r = await self.http.post(self.url("intake", "/v1/tickets"), json=body)
        assert r.status_code in (200, 201), r.text
        no = r.json()["ticket_no"]
        self.created.append(no)
        return no

    async def ticket(self, no: str) -> dict[str, Any]:
        r = await self.http.get(self.url("intake", f"/v1/tickets/{no}"))
        assert r.status_code == 200, r.text
        return r.json()

    async def routed(self, numbers: list[str], timeout: float = 30) -> dict[str, dict[str, Any]]:
        """Each ticket once intake has recorded its routing (assignment known)."""
        deadline = time.monotonic() + timeout
        out: dict[str, dict[str, Any]] = {}
        while len(out) < len(numbers):
            for no in numbers:
                if no not in out:
                    t = await self.ticket(no)
                    if t["assignment"]["priority"]:
                        out[no] = t
            if time.monotonic() > deadline:
                raise TimeoutError(f"routed {len(out)} of {len(numbers)} tickets")
            await asyncio.sleep(0.2)
        return out

    async def command(self, no: str, action: str, body: dict[str, Any]) -> None:
        r = await self.http.post(self.url("intake", f"/v1/tickets/{no}/{action}"), json=body)
        assert r.status_code in (200, 201, 202), f"{action} {no}: {r.status_code} {r.text}"

    async def answer_surveys(self, numbers: list[str], timeout: float = 20) -> int:
        """Answer the survey of each ticket (alternately satisfied and not); returns how many."""
        if "survey" not in self.ports:
            return 0
        sent = await self.tap.wait_events(lambda e: e.type == "survey.sent" and e.ticket_no in numbers,
                                          count=len(numbers), timeout=timeout)
        done = 0
        for i, event in enumerate({e.ticket_no: e for e in sent}.values()):
            score = 5 if i % 3 else 2
            path = httpx.URL(event.data["url"]).path
            r = await self.http.post(self.url("survey", path), json={
                "resolved": score > 2, "speed": score, "attitude": max(score, 3), "overall": score, "comment": "好"})
            assert r.status_code == 201, r.text
            done += 1
        await self.tap.wait_events(lambda e: e.type == "survey.completed" and e.ticket_no in numbers,
                                   count=done, timeout=timeout)
        return done

    async def round(self) -> None:
        """One round: fresh tickets (some received 10 days ago: their SLA clocks breach), then responses,
        resolutions (first-contact and not), an escalation, and survey answers."""
        old = datetime.now(UTC) - timedelta(days=10)
        numbers = [await self.create(*spec) for spec in TICKETS]
        numbers += [await self.create(*spec, received_at=old) for spec in TICKETS[:4]]
        tickets = await self.routed(numbers)
        resolved = []
        for i, no in enumerate(numbers):
            agent = tickets[no]["assignment"]["assignee"] or "agent-1"
            if i % 4 == 3:
                continue  # stays open
            await self.command(no, "respond", {"actor": agent, "message": "您好，正在为您处理"})
            if i % 4 == 2:
                await self.command(no, "escalate", {"actor": agent, "reason": "需要二线支持"})
            if tickets[no]["assignment"]["category"] in ("complaint", "attitude") or tickets[no]["complaint"]:
                # records (#14): a complaint is resolved with a responsibility and a remedy
                await self.command(no, "determine", {"actor": agent, "responsibility": "internal",
                                                     "department": "客服部", "remedy": "apology"})
            await self.command(no, "resolve", {"actor": agent, "outcome": "resolved", "solution": "已远程指导处理"})
            resolved.append(no)
        await self.answer_surveys(resolved)

    async def dead_letter(self) -> None:
        """A channel message that is not JSON: intake dead-letters it."""
        async with support.Publisher(self.env["AMQP_URL"]) as pub:
            before = await self._consumed("intake", 'outcome="dead_lettered"')
            await pub.publish("helpdesk.intake", "intake.phone", b"\xff not json")
        await self._metric_above("intake", 'outcome="dead_lettered"', before, 15)

    async def redeliveries(self) -> None:
        """Routing's inbox table disappears for a moment (as a database fault would make its queries
        fail): its consumer nacks the new ticket for redelivery until the table is back."""
        admin = await asyncpg.connect(self.env["DATABASE_URL"])
        try:
            await admin.execute("ALTER TABLE routing.inbox RENAME TO inbox_ops_test")
            try:
                before = await self._consumed("routing", 'outcome="retried"')
                no = await self.create("web", "请问如何开发票", None, "normal", False)
                await self._metric_above("routing", 'outcome="retried"', before, 15)
            finally:
                await admin.execute("ALTER TABLE routing.inbox_ops_test RENAME TO inbox")
        finally:
            await admin.close()
        await self.routed([no])

    async def _metric_above(self, service: str, needle: str, start: float, timeout: float) -> None:
        """Wait until ``service``'s consumed-message counters matching ``needle`` pass ``start``."""
        deadline = time.monotonic() + timeout
        while await self._consumed(service, needle) <= start:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{service}: no {needle} message counted")
            await asyncio.sleep(0.2)

    async def _consumed(self, service: str, needle: str) -> float:
        text = (await self.http.get(self.url(service, "/metrics"))).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("helpdesk_messages_consumed_total{") and needle in line)


@contextlib.asynccontextmanager
async def scraped_stack() -> AsyncIterator[tuple[Prometheus, list[str]]]:
    """Services + Prometheus + two rounds of the scenario (a counter's first increment is invisible to
    ``increase()``; the second round makes every series grow), then a scrape after the last action."""
    services = present_services()
    ports = {name: free_port() for name in services}
    async with harness.environment("ops") as env, contextlib.AsyncExitStack() as stack:
        env.update({
            "SURVEY_BASE_URL": f"http://127.0.0.1:{ports.get('survey', 8005)}",
            "NOTIFICATION_INTAKE_URL": f"http://127.0.0.1:{ports['intake']}",
            "HELPDESK_DELIVERY_LIMIT": "20",
            # Postgres (max_connections 100) is shared with other suites running at the same time
            "HELPDESK_DB_POOL_MAX": "3",
        })
        # intake first: it creates the database the others share
        await stack.enter_async_context(harness.service("intake", env, ports["intake"]))
        await asyncio.gather(*(stack.enter_async_context(harness.service(n, env, ports[n]))
                               for n in services if n != "intake"))
        prom = await stack.enter_async_context(prometheus(ports))
        http = await stack.enter_async_context(httpx.AsyncClient(headers={"X-API-Key": API_KEY}, timeout=15))
        tap = await stack.enter_async_context(support.Tap(env["AMQP_URL"]))
        scenario = Scenario(env, ports, http, tap)
        for _ in range(2):
            await scenario.round()
            await scenario.dead_letter()
            await scenario.redeliveries()
            await prom.scraped_since(http, time.time())
        await asyncio.sleep(1.5)  # late events (sla timers, notifications) settle, then one more scrape
        await prom.scraped_since(http, time.time())
        yield prom, services


def owners(expr: str) -> set[str]:
    """Services whose metrics a query reads (for panels of services not merged yet)."""
    found = set()
    for prefix, service in METRIC_OWNERS.items():
        if prefix in expr:
            found.add(service)
    return found


METRIC_OWNERS = {
    "helpdesk_sla_": "sla",
    "helpdesk_first_response_seconds": "sla",
    "helpdesk_resolution_seconds": "sla",
    "helpdesk_notifications_total": "notification",
    "helpdesk_notification_": "notification",
    "helpdesk_survey_": "survey",
    "helpdesk_tickets_created_total": "routing",
    "helpdesk_routing_": "routing",
    "helpdesk_open_tickets": "intake",
    "helpdesk_tickets_resolved_total": "intake",
}
