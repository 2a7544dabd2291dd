"""Notification throughput: deliveries/s to a local webhook sink that verifies every signature.

Runs in its own RabbitMQ vhost and Postgres database (both removed at the end). The sink is a
separate process (uvicorn + Starlette on a free loopback port). Two figures:

* end to end: N ``ticket.routed`` events published → N signed webhooks confirmed (consume, plan,
  claim, render, sign, POST, record + ``notification.sent`` through the outbox);
* worker only: the same N deliveries reset to pending and sent again (claim → record).

    python -m scripts.bench_notification --n 2000
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import multiprocessing
import os
import socket
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import uvloop

SECRET = "bench-secret"


def _sink(port: int, counter: "multiprocessing.sharedctypes.Synchronized[int]") -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def hook(request: Request) -> Response:
        raw = await request.body()
        ts = request.headers.get("x-helpdesk-timestamp", "")
        want = "sha256=" + hmac.new(SECRET.encode(), ts.encode() + b"." + raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, request.headers.get("x-helpdesk-signature", "")):
            return Response(status_code=401)
        with counter.get_lock():
            counter.value += 1
        return Response(b'{"ok":true}', media_type="application/json")

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


RULES = """
[retry]
max_attempts = 5
base_s = 0.2
max_s = 2.0
[rate_limit]
staff = 0
[channels.log]
type = "log"
[channels.sms]
type = "log"
address = "phone"
[channels.email]
type = "log"
address = "email"
[channels.hook]
type = "webhook"
url = "http://127.0.0.1:{port}/hook"
secret = "{secret}"
[staff.bench]
channels = ["hook"]
[[rules]]
event = "ticket.routed"
template = "assigned"
to = ["assignee"]
"""


async def _wait_sent(pool, n: int, timeout: float) -> float:  # noqa: ANN001
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        done = await pool.fetchval("SELECT count(*) FROM notification.deliveries WHERE status = 'sent'")
        if done >= n:
            return time.perf_counter() - start
        await asyncio.sleep(0.05)
    raise TimeoutError(f"only {done} of {n} deliveries sent in {timeout}s")


async def run(n: int, concurrency: int) -> None:
    from services.notification.app import create_app
    from services.notification.config import NotificationSettings
    from shared.envelope import new_event
    from shared.settings import Settings
    from tests import support

    tag = uuid.uuid4().hex[:8]
    vhost, dbname = f"helpdesk_bench_notification_{tag}", f"helpdesk_bench_notification_{tag}"
    amqp = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    os.environ.update({"AMQP_URL": amqp, "DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{dbname}",
                       "HELPDESK_API_KEYS": "bench:bench:admin", "HELPDESK_LOG_LEVEL": "WARNING"})
    support.create_vhost(vhost)
    port = free_port()
    counter = multiprocessing.Value("i", 0)
    sink = multiprocessing.Process(target=_sink, args=(port, counter), daemon=True)
    sink.start()
    tmp = tempfile.TemporaryDirectory()
    try:
        rules = Path(tmp.name) / "rules.toml"
        rules.write_text(RULES.format(port=port, secret=SECRET), encoding="utf-8")
        await asyncio.sleep(1.0)  # the sink starts
        opts = NotificationSettings(rules_file=rules, worker_concurrency=concurrency, worker_batch=200)
        app = create_app(Settings(), options=opts)
        async with app.router.lifespan_context(app):
            rt, worker = app.state.runtime, app.state.worker
            events = [new_event(service="routing", type="ticket.routed", ticket_no=f"20261123{i:06d}", seq=1,
                                data={"category": "fault", "priority": "P3", "department": "technical",
                                      "assignee": "bench", "rule": "bench"}) for i in range(1, n + 1)]
            async with support.Publisher(amqp) as pub:
                start = time.perf_counter()
                await asyncio.gather(*(pub.publish("helpdesk.events", e.type, e.to_bytes(), message_id=e.id)
                                       for e in events))
                published = time.perf_counter() - start
                await _wait_sent(rt.pool, n, timeout=max(120.0, n / 20))
            total_e2e = time.perf_counter() - start
            await rt.pool.execute(
                "UPDATE notification.deliveries SET status = 'pending', attempts = 0, last_attempt_at = NULL,"
                " sent_at = NULL, next_attempt_at = $1", datetime.now(UTC))
            await rt.pool.execute("DELETE FROM notification.attempts")
            worker.wake()
            only = await _wait_sent(rt.pool, n, timeout=max(120.0, n / 20))
        received = counter.value
        from prometheus_client import REGISTRY

        sends = REGISTRY.get_sample_value("helpdesk_notification_send_seconds_count", {"channel": "hook"}) or 1
        send_s = REGISTRY.get_sample_value("helpdesk_notification_send_seconds_sum", {"channel": "hook"}) or 0
        print(f"notification bench: n={n} deliveries per phase, concurrency={concurrency}")
        print(f"  publish {n} events: {published:.2f}s")
        print(f"  end to end (publish -> {n} signed webhooks confirmed): {total_e2e:.2f}s "
              f"= {n / total_e2e:.0f} deliveries/s")
        print(f"  worker only ({n} due deliveries -> sent): {only:.2f}s = {n / only:.0f} deliveries/s")
        print(f"  mean send attempt (render, sign, POST): {1000 * send_s / sends:.1f} ms")
        print(f"  sink verified {received} signed requests (expected {2 * n})")
    finally:
        sink.terminate()
        sink.join(5)
        tmp.cleanup()
        await support.drop_database(dbname)
        support.delete_vhost(vhost)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="deliveries per phase")
    parser.add_argument("--concurrency", type=int, default=32, help="sends in flight per worker")
    args = parser.parse_args()
    uvloop.run(run(args.n, args.concurrency))  # as `python -m services.notification` runs


if __name__ == "__main__":
    main()
