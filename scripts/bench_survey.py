"""Survey figures on this machine: resolution -> ``survey.sent`` latency, and answers per second until
``survey.completed`` is on the broker.

Runs intake and survey in-process against the real RabbitMQ and Postgres, in a vhost and a database
of its own (removed at the end): ``python -m scripts.bench_survey [--tickets 200] [--concurrency 20]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import time
import uuid

import aio_pika
import httpx
import orjson

from tests import support

API_KEY = "bench-secret"


async def _tap(url: str, keys: tuple[str, ...], sink: dict[str, dict[str, float]]) -> aio_pika.abc.AbstractConnection:
    conn = await aio_pika.connect_robust(url)
    ch = await conn.channel()
    ex = await ch.declare_exchange("helpdesk.events", aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await ch.declare_queue(exclusive=True, auto_delete=True)
    for key in keys:
        await queue.bind(ex, routing_key=key)

    async def on(msg: aio_pika.abc.AbstractIncomingMessage) -> None:
        event = orjson.loads(msg.body)
        sink.setdefault(event["type"], {})[event["subject"]] = time.perf_counter()
        sink.setdefault("urls", {})[event["subject"]] = event["data"].get("url")  # type: ignore[assignment]

    await queue.consume(on, no_ack=True)
    return conn


async def _until(pred, timeout: float = 120) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError("the events did not all arrive")
        await asyncio.sleep(0.02)


async def run(tickets: int, concurrency: int) -> None:
    from services.intake.app import create_app as intake_app
    from services.survey.app import create_app as survey_app
    from shared.settings import Settings

    seen: dict[str, dict[str, float]] = {}
    sem = asyncio.Semaphore(concurrency)
    intake, survey = intake_app(Settings()), survey_app(Settings())
    async with intake.router.lifespan_context(intake), survey.router.lifespan_context(survey):
        ic = httpx.AsyncClient(transport=httpx.ASGITransport(app=intake), base_url="http://intake",
                               headers={"X-API-Key": API_KEY})
        sc = httpx.AsyncClient(transport=httpx.ASGITransport(app=survey), base_url="http://survey")
        tap = await _tap(os.environ["AMQP_URL"], ("ticket.resolved", "survey.*"), seen)
        resolved_at: dict[str, float] = {}

        async def one_ticket(i: int) -> None:
            async with sem:
                r = await ic.post("/v1/tickets", json={"channel": "app", "customer": {"name": f"c{i}", "id": f"c{i}"},
                                                       "subject": "使用疑问", "external_id": uuid.uuid4().hex})
                no = r.json()["ticket_no"]
                await ic.post(f"/v1/tickets/{no}/resolve",
                              json={"actor": "a1", "outcome": "resolved", "solution": "电话指导设置定时开机"})
                resolved_at[no] = time.perf_counter()

        await asyncio.gather(*(one_ticket(i) for i in range(tickets)))
        await _until(lambda: len(seen.get("survey.sent", {})) >= tickets)
        latency = [seen["survey.sent"][no] - t for no, t in resolved_at.items()]

        urls = dict(seen["urls"])
        body = {"resolved": True, "speed": 4, "attitude": 5, "overall": 4, "comment": "好"}

        async def one_answer(no: str) -> None:
            async with sem:
                r = await sc.post(httpx.URL(urls[no]).path, json=body)
                assert r.status_code == 201, r.text

        start = time.perf_counter()
        await asyncio.gather(*(one_answer(no) for no in resolved_at))
        await _until(lambda: len(seen.get("survey.completed", {})) >= tickets)
        answers_s = tickets / (time.perf_counter() - start)
        await tap.close()
        await ic.aclose()
        await sc.aclose()
    q = statistics.quantiles(latency, n=20)
    print(f"tickets={tickets} concurrency={concurrency}")
    print(f"resolution -> survey.sent on the broker: p50 {statistics.median(latency) * 1000:.0f} ms, "
          f"p95 {q[18] * 1000:.0f} ms, max {max(latency) * 1000:.0f} ms")
    print(f"answers (HTTP JSON) until survey.completed on the broker: {answers_s:.0f} /s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    name = f"helpdesk_bench_survey_{uuid.uuid4().hex[:8]}"
    support.create_vhost(name)
    os.environ.update({"AMQP_URL": f"amqp://guest:guest@127.0.0.1:5672/{name}",
                       "DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{name}",
                       "HELPDESK_API_KEYS": f"bench:{API_KEY}:admin", "HELPDESK_LOG_LEVEL": "WARNING"})
    try:
        asyncio.run(run(args.tickets, args.concurrency))
    finally:
        support.delete_vhost(name)
        with contextlib.suppress(Exception):
            asyncio.run(support.drop_database(name))


if __name__ == "__main__":
    main()
