"""Routing latency: ``ticket.created`` -> ``ticket.routed``, p50/p99, against a fresh vhost and database.

Starts intake and routing (as processes by default, ``--in-process`` to run them in this process),
gives every department agents with room for every ticket (so each one goes through assignment), then
publishes ``--tickets`` intake messages over AMQP at ``--rate`` per second and taps ``helpdesk.events``.

Figures (wall clock, one machine):
* created->routed: ``ticket.routed`` arrival at the tap minus the ``time`` of ``ticket.created``
  (stamped by intake when it commits the ticket): intake's relay + routing + routing's relay.
* routing hop: ``ticket.routed`` arrival minus ``ticket.created`` arrival at the tap (routing alone).
* publish->routed: from our publish of the intake message (end to end).

The vhost and database are deleted at the end, whatever happens.
    python -m scripts.bench_routing --tickets 500 --rate 50
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import asyncpg
import httpx
import orjson

from shared.envelope import CloudEvent
from shared.trust import url_user
from tests import support

ROOT = Path(__file__).resolve().parent.parent
TEXTS = [
    ("设备无法启动", "客户报告设备宕机，生产停止"), ("打印机报错", "打印时提示错误代码 E05"),
    ("货物破损", "收到的显示器屏幕有裂痕"), ("产品使用疑问", "请问这个型号怎么设置定时开关机？"),
    ("客服态度恶劣", "电话里客服很不耐烦"), ("快递三天还没到", "物流信息一直没有更新"),
    ("申请退货", "尺码不合适，想退货"), ("申请退款", "订单重复扣款，请尽快退款"),
    ("我要投诉", "等了一个星期都没人处理"), ("功能建议", "建议增加夜间模式"),
    ("Refund please", "I was charged twice"), ("The app keeps crashing", None), ("Hello", "Call me back"),
]
DEPARTMENTS = ("technical", "finance", "logistics", "service_quality", "service_desk")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def line(name: str, ms: list[float]) -> str:
    return (f"{name:<17} p50 {pct(ms, 50):7.1f} ms   p99 {pct(ms, 99):7.1f} ms   "
            f"mean {statistics.fmean(ms):7.1f} ms   max {max(ms):7.1f} ms")


def _die_with_parent() -> None:
    """Linux: a service process gets SIGTERM when this script dies, however it dies."""
    with contextlib.suppress(Exception):
        import ctypes
        import signal
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


async def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{url}: service exited with {proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url + "/healthz", timeout=2)).status_code == 200:
                    return
            await asyncio.sleep(0.3)
    raise TimeoutError(f"{url} not healthy after {timeout}s")


class Services:
    """intake + routing as processes (default) or in this process."""

    def __init__(self, env: dict[str, str], in_process: bool) -> None:
        self.env, self.in_process = env, in_process
        self.procs: list[subprocess.Popen[bytes]] = []
        self.stack = contextlib.AsyncExitStack()
        self.urls: dict[str, str] = {}

    async def __aenter__(self) -> Services:
        if self.in_process:
            os.environ.update(self.env)
            from services.intake.app import create_app as intake_app
            from services.routing.app import create_app as routing_app
            from shared.settings import Settings
            for name, factory in (("intake", intake_app), ("routing", routing_app)):
                app = factory(Settings())
                await self.stack.enter_async_context(app.router.lifespan_context(app))
                client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://" + name)
                self.urls[name] = await self.stack.enter_async_context(client) and "asgi"
                setattr(self, name, client)
            return self
        for name, port in (("intake", 18101), ("routing", 18102)):
            env = {**os.environ, **self.env, f"{name.upper()}_PORT": str(port), "HELPDESK_LOG_LEVEL": "WARNING"}
            self.procs.append(subprocess.Popen([sys.executable, "-m", f"services.{name}"], cwd=ROOT, env=env,
                                               stdout=subprocess.DEVNULL, preexec_fn=_die_with_parent))
            self.urls[name] = f"http://127.0.0.1:{port}"
        for url, proc in zip(self.urls.values(), self.procs, strict=True):
            await wait_healthy(url, proc)
        self.routing = await self.stack.enter_async_context(httpx.AsyncClient(base_url=self.urls["routing"]))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stack.aclose()
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


async def run(args: argparse.Namespace, amqp_url: str, env: dict[str, str]) -> None:
    async with Services(env, args.in_process) as svc:
        agents = [{"id": f"bench-{d}-{i}", "department": d, "capacity": 1000} for d in DEPARTMENTS for i in range(3)]
        r = await svc.routing.put("/v1/roster", json={"agents": agents}, headers={"X-API-Key": "bench"})
        r.raise_for_status()
        conn = await aio_pika.connect_robust(amqp_url)
        async with conn:
            ch = await conn.channel(publisher_confirms=True)
            events = await ch.declare_exchange("helpdesk.events", aio_pika.ExchangeType.TOPIC, durable=True)
            intake = await ch.declare_exchange("helpdesk.intake", aio_pika.ExchangeType.TOPIC, durable=True)
            tap = await ch.declare_queue(exclusive=True, auto_delete=True)
            for key in ("ticket.created", "ticket.routed"):
                await tap.bind(events, routing_key=key)
            published: dict[str, float] = {}
            created: dict[str, tuple[str, float, float]] = {}  # ticket_no -> (external_id, event time, arrival)
            routed: dict[str, float] = {}
            done = asyncio.Event()

            async def on(msg: aio_pika.abc.AbstractIncomingMessage) -> None:
                now = time.time()
                e = CloudEvent.from_bytes(msg.body)
                if e.type == "ticket.created" and e.data.get("external_id") in published:
                    created[e.subject] = (e.data["external_id"], e.time.timestamp(), now)
                elif e.type == "ticket.routed" and e.data.get("reason") == "created":
                    routed.setdefault(e.subject, now)
                if len(routed) >= args.tickets and len(created) >= args.tickets:
                    done.set()

            await tap.consume(on, no_ack=True)
            run_id = uuid.uuid4().hex[:8]
            start = time.monotonic()
            for i in range(args.tickets):
                subject, description = TEXTS[i % len(TEXTS)]
                ext = f"bench-{run_id}-{i}"
                body = {"channel": "web", "external_id": ext, "customer": {"name": "压测", "tier":
                        "vip" if i % 7 == 0 else "standard"}, "subject": subject, "description": description}
                published[ext] = time.time()
                await intake.publish(aio_pika.Message(orjson.dumps(body), content_type="application/json",
                                                      delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                                      user_id=url_user(amqp_url)),
                                     routing_key="intake.web")
                await asyncio.sleep(max(0.0, start + (i + 1) / args.rate - time.monotonic()))
            sent_s = time.monotonic() - start
            try:
                await asyncio.wait_for(done.wait(), args.timeout)
            except TimeoutError:
                print(f"timed out: {len(created)} created, {len(routed)} routed of {args.tickets}", file=sys.stderr)
    nos = [no for no in created if no in routed]
    if not nos:
        raise SystemExit("no ticket was routed")
    c2r = [(routed[no] - created[no][1]) * 1000 for no in nos]
    hop = [(routed[no] - created[no][2]) * 1000 for no in nos]
    e2e = [(routed[no] - published[created[no][0]]) * 1000 for no in nos]
    mode = "in-process" if args.in_process else "processes"
    print(f"routing latency, {len(nos)} tickets at {args.tickets / sent_s:.0f}/s ({mode}, "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cpu)")
    print(line("created->routed", c2r))
    print(line("routing hop", hop))
    print(line("publish->routed", e2e))


async def create_database(name: str) -> None:
    conn = await asyncpg.connect(support.ADMIN_DB)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50.0, help="intake messages per second")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--in-process", action="store_true", help="run intake and routing in this process")
    args = parser.parse_args()
    name = f"helpdesk_bench_{uuid.uuid4().hex[:10]}"
    support.create_vhost(name)
    amqp_url = f"amqp://guest:guest@127.0.0.1:5672/{name}"
    env = {"AMQP_URL": amqp_url, "DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{name}",
           "HELPDESK_API_KEYS": "bench:bench:admin"}
    try:
        # Created here: two services creating it at once can race in shared.db.ensure_database.
        asyncio.run(create_database(name))
        asyncio.run(run(args, amqp_url, env))
    finally:
        support.delete_vhost(name)
        asyncio.run(support.drop_database(name))


if __name__ == "__main__":
    main()
