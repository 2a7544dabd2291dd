"""End-to-end benchmark of the whole pipeline (``make bench``), printed as figures.

    python -m scripts.bench_e2e [--quick] [--tickets N] [--latency-seconds S] [--rates 10,50,100] [--sizes 10000,1000000]
                                [--profile DIR]

1. Substrate ceiling, measured first on an idle stack: one aio-pika process publishing persistent
   messages with confirms to a quorum queue while consuming them with acks (msgs/s), and single-row
   asyncpg commits/s (1 connection, and 8 concurrent ones).
2. Every available service as its own process (as ``make run`` does) in a fresh vhost + database.
3. Latency at fixed rates (10, 50 and 100 tickets/s): p50/p99 from publishing the intake message to each stage.
4. Flat out: N tickets, time until each stage holds all of them (received -> ticket.created ->
   ticket.routed -> sla.started -> first customer notification.sent); CPU and RSS per service.
5. Per-ticket cost with 10 k and 1 M tickets already stored (COPY-loaded into intake's schema).

Stages whose service does not exist yet are skipped (and said so).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import signal
import subprocess
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import asyncpg
import httpx

from shared import db
from scripts.harness import (
    IntakePublisher, Recorder, Stack, cpu_seconds, environment, external_id, percentile, rss_mb, skipped,
    ticket_body,
)

STAGES = [  # (stage, service that produces it)
    ("ticket.created", "intake"),
    ("ticket.routed", "routing"),
    ("sla.started", "sla"),
    ("notification.customer", "notification"),
]


# ---------------------------------------------------------------- substrate ceiling

async def amqp_ceiling(url: str, n: int, window: int = 500) -> float:
    """msgs/s through one process: publish with confirms (``window`` in flight) + consume with acks."""
    conn = await aio_pika.connect_robust(url)
    pub = await conn.channel(publisher_confirms=True)
    sub = await conn.channel()
    await sub.set_qos(prefetch_count=256)
    name = f"bench.ceiling.{uuid.uuid4().hex[:6]}"
    queue = await sub.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
    got = 0
    done = asyncio.Event()

    async def on(msg: aio_pika.abc.AbstractIncomingMessage) -> None:
        nonlocal got
        await msg.ack()
        got += 1
        if got == n:
            done.set()

    tag = await queue.consume(on)
    body = ticket_body("ceiling", 1)
    slots = asyncio.Semaphore(window)

    async def one() -> None:
        try:
            await pub.default_exchange.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=name)
        finally:
            slots.release()

    start = time.perf_counter()
    tasks = []
    for _ in range(n):
        await slots.acquire()
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    await asyncio.wait_for(done.wait(), 120)
    elapsed = time.perf_counter() - start
    await queue.cancel(tag)
    await queue.delete(if_unused=False, if_empty=False)
    await conn.close()
    return n / elapsed


async def pg_ceiling(dsn: str, seconds: float, concurrency: int) -> float:
    """Single-row INSERT commits/s (each statement its own transaction, as a handler commits)."""
    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)
    await pool.execute("CREATE TABLE IF NOT EXISTS bench_commits (id bigserial PRIMARY KEY, body text)")
    count = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal count
        async with pool.acquire() as conn:
            while time.perf_counter() < stop:
                await conn.execute("INSERT INTO bench_commits (body) VALUES ($1)", "x" * 200)
                count += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    rate = count / (time.perf_counter() - start)
    await pool.execute("DROP TABLE bench_commits")
    await pool.close()
    return rate


async def ensure_db(database_url: str) -> None:
    name = db.database_name(database_url)
    parts = urlsplit(database_url)
    conn = await asyncpg.connect(urlunsplit(parts._replace(path="/postgres")))  # keeps ?host= (a socket)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


# ---------------------------------------------------------------- pipeline runs

class Run:
    def __init__(self, stack: Stack, rec: Recorder, pub: IntakePublisher, database_url: str) -> None:
        self.stack, self.rec, self.pub, self.database_url = stack, rec, pub, database_url
        self.sent: dict[str, float] = {}  # external_id -> publish time
        self.serial = 0

    async def send(self, count: int, rate: float = 0.0) -> list[str]:
        exts = []
        start = time.perf_counter()
        for i in range(count):
            self.serial += 1
            ext = external_id("e2e")
            exts.append(ext)
            self.sent[ext] = time.perf_counter()
            await self.pub.publish("helpdesk.intake", "intake.web", ticket_body(ext, self.serial))
            if rate:
                await asyncio.sleep(max(0.0, start + (i + 1) / rate - time.perf_counter()))
        await self.pub.flush()
        return exts

    def tickets(self, exts: list[str]) -> list[str]:
        return [self.rec.ticket_of[e] for e in exts if e in self.rec.ticket_of]

    async def wait(self, exts: list[str], stages: list[str], timeout: float) -> bool:
        """Until every ticket of ``exts`` reached every stage (or ``timeout`` without progress)."""
        last, last_change = -1, time.monotonic()
        while True:
            tickets = self.tickets(exts)
            have = len(tickets) + sum(self.rec.reached(s, tickets) for s in stages if s != "ticket.created")
            want = len(exts) * len(stages)
            if have >= want:
                return True
            if have != last:
                last, last_change = have, time.monotonic()
            elif time.monotonic() - last_change > timeout:
                print(f"  !! stalled at {have}/{want} stage arrivals", flush=True)
                return False
            self.rec.changed.clear()
            try:
                await asyncio.wait_for(self.rec.changed.wait(), 1.0)
            except TimeoutError:
                pass

    def stage_latencies(self, exts: list[str], stage: str) -> list[float]:
        out = []
        for ext in exts:
            t = self.rec.ticket_of.get(ext)
            if t is not None and (t, stage) in self.rec.first:
                out.append(self.rec.first[(t, stage)] - self.sent[ext])
        return out


def broker_pids() -> list[int]:
    """RabbitMQ's Erlang VM (shared with everything else on this broker)."""
    out = subprocess.run(["pgrep", "-f", "beam.smp"], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


async def backend_pids(database_url: str) -> list[int]:
    """The Postgres backends serving this run's database (the services' pools and listeners)."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                                " AND pid <> pg_backend_pid()")
        return [r["pid"] for r in rows]
    finally:
        await conn.close()


async def statement_counts(database_url: str) -> dict[str, int] | None:
    """Statements (and BEGIN/COMMIT) each service's role sent to this database so far, from
    ``pg_stat_statements`` — None when the server does not load it (``shared_preload_libraries``): a
    count no other load on the machine skews, unlike CPU seconds."""
    conn = await asyncpg.connect(database_url)
    try:
        if not await conn.fetchval("SELECT current_setting('shared_preload_libraries') ~ 'pg_stat_statements'"):
            return None
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        rows = await conn.fetch(
            "SELECT r.rolname, sum(s.calls)::bigint AS n FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid"
            " WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND r.rolname LIKE 'helpdesk\\_%' GROUP BY 1")
        return {r["rolname"].removeprefix("helpdesk_"): r["n"] for r in rows}
    finally:
        await conn.close()


def steal_ticks() -> tuple[int, int]:
    """(stolen, all) CPU ticks of the whole machine so far (``/proc/stat``): on a shared virtual machine
    the hypervisor's share explains much of the spread between runs."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return (values[7] if len(values) > 7 else 0), sum(values[:8])


def calibrate() -> float:
    """Milliseconds this machine takes for a fixed pure-Python loop now: the CPU speed the run got (a
    shared machine's varies from run to run; compare per-ticket CPU figures of runs at a like speed)."""
    start = time.perf_counter()
    total = 0
    for i in range(2_000_000):
        total += i
    return (time.perf_counter() - start) * 1000


def cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += cpu_seconds(pid)
    return total


async def metrics_texts(stack: Stack) -> dict[str, str]:
    """Each service's ``/metrics`` page now (a service that does not answer is left out)."""
    out: dict[str, str] = {}
    async with httpx.AsyncClient(timeout=10) as client:
        for name in stack.names:
            with contextlib.suppress(httpx.HTTPError):
                out[name] = (await client.get(f"{stack.url(name)}/metrics")).text
    return out


async def handler_totals(stack: Stack) -> dict[tuple[str, str], tuple[float, float]]:
    """(service, queue) -> (seconds spent, messages) from the consumers' Prometheus histograms."""
    out: dict[tuple[str, str], list[float]] = {}
    for name, text in (await metrics_texts(stack)).items():
        for m in METRIC.finditer(text):
            slot = out.setdefault((name, m["handler"]), [0.0, 0.0])
            slot[0 if m["kind"] == "sum" else 1] += float(m["value"])
    return {k: (v[0], v[1]) for k, v in out.items()}


METRIC = re.compile(r'^helpdesk_consumer_seconds_(?P<kind>sum|count)\{[^}]*'
                    r'queue="(?P<handler>[^"]+)"[^}]*\} (?P<value>\S+)$', re.MULTILINE)
GC = re.compile(r'^helpdesk_gc_pause_seconds_(?P<kind>sum|count)\{generation="(?P<gen>\d)"\} (?P<value>\S+)$', re.MULTILINE)


async def gc_totals(stack: Stack) -> dict[str, tuple[float, float, float]]:
    """service -> (seconds its loop stood still for the garbage collector, collections, full collections)."""
    out = {}
    for name, text in (await metrics_texts(stack)).items():
        pause = collections = full = 0.0
        for m in GC.finditer(text):
            value = float(m["value"])
            if m["kind"] == "sum":
                pause += value
            else:
                collections += value
                full += value if m["gen"] == "2" else 0.0
        out[name] = (pause, collections, full)
    return out


def print_gc(before: dict, after: dict, elapsed: float) -> None:
    parts = []
    for name, (s1, n1, f1) in after.items():
        s0, n0, f0 = before.get(name, (0.0, 0.0, 0.0))
        parts.append(f"{name} {(s1 - s0) * 1000:.0f} ms ({int(n1 - n0)}, {int(f1 - f0)} full)")
    print("  garbage collector (the loop stood still; collections, of them full): " + ", ".join(parts)
          + f" in {elapsed:.0f} s")


def print_handlers(before: dict, after: dict, elapsed: float) -> None:
    print("  consumers (mean time from a delivery's arrival to its settlement, incl. its batch and waiting"
          " for the event loop):")
    for key in sorted(after):
        s0, n0 = before.get(key, (0.0, 0.0))
        s1, n1 = after[key]
        if n1 - n0 >= 1:
            print(f"    {key[0]:<13} {key[1]:<40} {int(n1 - n0):6d} msgs  mean {(s1 - s0) / (n1 - n0) * 1000:7.1f} ms"
                  f"  concurrency {(s1 - s0) / elapsed:5.1f}")


def ms(values: list[float], p: float) -> str:
    return f"{percentile(values, p) * 1000:.0f}" if values else "-"


async def all_cpu(run: Run, infra: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds so far of every service and of ``infra``'s processes (the broker, the database's
    backends: the same pids before and after a phase)."""
    out = {name: cpu_seconds(run.stack.pid(name)) for name in run.stack.names}
    out.update({label: cpu_of(pids) for label, pids in infra.items()})
    return out


def print_statements(stack: Stack, before: dict[str, int] | None, after: dict[str, int] | None, n: int) -> None:
    if before is None or after is None:
        print("  statements per ticket: pg_stat_statements is not loaded (shared_preload_libraries), not counted")
        return
    per = {name: (after.get(name, 0) - before.get(name, 0)) / n for name in stack.names}
    print("  statements per ticket (pg_stat_statements, BEGIN/COMMIT included): "
          + ", ".join(f"{name} {v:.1f}" for name, v in per.items()) + f"; all {sum(per.values()):.1f}")


async def phase_idle(run: Run, seconds: float = 5.0) -> None:
    """What the stack spends doing nothing (timers, polls, heartbeats, metrics): part of every paced
    phase's CPU per ticket, and at a low rate a large part."""
    infra = {"rabbitmq": broker_pids(), "postgres": await backend_pids(run.database_url)}
    cpu0 = await all_cpu(run, infra)
    await asyncio.sleep(seconds)
    cpu1 = await all_cpu(run, infra)
    busy = {k: (cpu1[k] - cpu0[k]) / seconds * 100 for k in cpu1}
    services = sum(v for k, v in busy.items() if k not in ("rabbitmq", "postgres"))
    print(f"\nidle ({seconds:g} s, no tickets): {sum(busy.values()):.1f}% of one core = services {services:.1f}"
          f" ({', '.join(f'{k} {v:.1f}' for k, v in busy.items() if k not in ('rabbitmq', 'postgres'))})"
          f" + RabbitMQ {busy['rabbitmq']:.1f} + Postgres {busy['postgres']:.1f}")


async def phase_latency(run: Run, seconds: float, stages: list[str], rate: float) -> None:
    n = int(rate * seconds)
    infra = {"rabbitmq": broker_pids(), "postgres": await backend_pids(run.database_url)}
    cpu0 = await all_cpu(run, infra)
    statements0, gc0, began = await statement_counts(run.database_url), await gc_totals(run.stack), time.perf_counter()
    exts = await run.send(n, rate=rate)
    await run.wait(exts, stages, 60)
    print(f"\nlatency at {rate:g} tickets/s ({n} tickets over AMQP):")
    for stage in stages:
        lat = run.stage_latencies(exts, stage)
        print(f"  publish -> {stage:<22} p50 {ms(lat, 50):>5} ms   p99 {ms(lat, 99):>5} ms   ({len(lat)}/{n})")
    await asyncio.sleep(2)  # let the tail of this rate's work (outbox, deliveries) finish first
    cpu1 = await all_cpu(run, infra)
    spent = {k: (cpu1[k] - cpu0[k]) / n * 1000 for k in cpu1}
    services = sum(v for k, v in spent.items() if k not in ("rabbitmq", "postgres"))
    print(f"  CPU per ticket at this rate (the phase's idle work included): {sum(spent.values()):.1f} ms"
          f" = services {services:.1f} + RabbitMQ {spent['rabbitmq']:.1f} + Postgres {spent['postgres']:.1f}")
    print_statements(run.stack, statements0, await statement_counts(run.database_url), n)
    print_gc(gc0, await gc_totals(run.stack), time.perf_counter() - began)


NATIVE = False  # --native: py-spy records native frames too


async def phase_flat_out(run: Run, n: int, stages: list[str], profile: Path | None) -> float:
    stack = run.stack
    cpu0 = {name: cpu_seconds(stack.pid(name)) for name in stack.names}
    infra = {"rabbitmq (beam.smp, whole broker)": broker_pids(),
             "postgres (this database's backends)": await backend_pids(run.database_url)}
    infra0 = {k: cpu_of(v) for k, v in infra.items()}
    spies = []
    if profile:
        profile.mkdir(parents=True, exist_ok=True)
        for name in stack.names:
            spies.append(await asyncio.create_subprocess_exec(
                str(Path(sys.executable).parent / "py-spy"), "record", *(["--native"] if NATIVE else ["--nonblocking"]), "--gil", "-r", "100",
                "-p", str(stack.pid(name)), "-f", "raw", "-o", str(profile / f"{name}.txt"), "-d", "600",
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL))
    handlers0, gc0 = await handler_totals(stack), await gc_totals(stack)
    statements0 = await statement_counts(run.database_url)
    speed0, steal0 = calibrate(), steal_ticks()
    start = time.perf_counter()
    exts = await run.send(n)
    published = time.perf_counter() - start
    complete = await run.wait(exts, stages, 60)
    for spy in spies:
        spy.send_signal(2)
    for spy in spies:
        await spy.wait()
    tickets = run.tickets(exts)
    ends = {}
    for stage in stages:
        times = [run.rec.first[(t, stage)] for t in tickets if (t, stage) in run.rec.first]
        ends[stage] = (max(times) - start) if times else float("nan")
    elapsed = max(ends.values())
    print(f"\nflat out: {n} tickets published (confirmed) in {published:.1f}s "
          f"({n / published:.0f}/s){'' if complete else '  — INCOMPLETE, see stalled counts'}")
    for stage in stages:
        reached = run.rec.reached(stage, tickets) if stage != "ticket.created" else len(tickets)
        print(f"  all {stage:<22} after {ends[stage]:6.1f}s  -> {reached / ends[stage]:6.0f} tickets/s ({reached}/{n})")
    final = stages[-1]
    rate = run.rec.reached(final, tickets) / ends[final] if final != "ticket.created" else len(tickets) / elapsed
    print(f"  sustained end to end (to {final}): {rate:.0f} tickets/s")
    print("  per service during the flat-out run:")
    total = 0.0
    for name in stack.names:
        cpu = cpu_seconds(stack.pid(name)) - cpu0[name]
        total += cpu
        print(f"    {name:<13} CPU {cpu:6.1f}s = {cpu / elapsed * 100:4.0f}% of one core, "
              f"{cpu / n * 1000:5.2f} ms/ticket, RSS {rss_mb(stack.pid(name)):5.0f} MB")
    for label, pids in infra.items():
        cpu = cpu_of(pids) - infra0[label]
        total += cpu
        print(f"    {label:<36} CPU {cpu:6.1f}s = {cpu / elapsed * 100:4.0f}% of one core, {cpu / n * 1000:5.2f} ms/ticket")
    print(f"  CPU per ticket, everything counted (services + RabbitMQ + Postgres): {total / n * 1000:.2f} ms"
          " (the broker figure is the whole broker: other work on it is counted too)")
    steal1, speed1 = steal_ticks(), calibrate()
    print(f"  machine: a fixed Python loop took {speed0:.0f} ms before and {speed1:.0f} ms after the run;"
          f" the hypervisor took {(steal1[0] - steal0[0]) / max(1, steal1[1] - steal0[1]) * 100:.0f}% of the CPU"
          " during it (steal)")
    print_statements(stack, statements0, await statement_counts(run.database_url), n)
    print_handlers(handlers0, await handler_totals(stack), elapsed)
    print_gc(gc0, await gc_totals(stack), elapsed)
    if profile:
        print(f"  py-spy raw profiles in {profile}/ (summarise: python -m scripts.pyspy_summary {profile}/intake.txt)")
    return rate


async def preload(database_url: str, total: int) -> tuple[int, float]:
    """COPY synthetic tickets (dated 2025-01-01) into intake.tickets until it holds ``total`` rows."""
    conn = await asyncpg.connect(database_url)
    try:
        have = await conn.fetchval("SELECT count(*) FROM intake.tickets")
        start = time.perf_counter()
        base = await conn.fetchval(
            "SELECT coalesce(max(substr(ticket_no, 9)::bigint), 0) FROM intake.tickets WHERE ticket_no LIKE '20250101%'")
        received = datetime(2025, 1, 1, 2, tzinfo=UTC)
        cols = ["ticket_no", "channel", "external_id", "status", "customer_name", "customer_phone", "customer_tier",
                "subject", "description", "urgency", "impact", "received_at", "created_at", "updated_at",
                "category", "priority", "department", "assignee"]
        todo = total - have
        chunk = 50_000
        while todo > 0:
            size = min(chunk, todo)
            rows = []
            for k in range(size):
                serial = base + k + 1
                at = received + timedelta(seconds=serial % 80_000)
                rows.append((f"20250101{serial:08d}", "web", f"pre-{serial}", ("resolved", "closed", "assigned")[serial % 3],
                             "预载客户", f"139{serial % 100_000_000:08d}", "standard", "设备无法启动",
                             f"preloaded ticket {serial}", "normal", "single", at, at, at,
                             "fault", "P3", "technical", "eng-1"))
            await conn.copy_records_to_table("tickets", schema_name="intake", records=rows, columns=cols)
            base += size
            todo -= size
        await conn.execute("ANALYZE intake.tickets")
        return max(0, total - have), time.perf_counter() - start
    finally:
        await conn.close()


async def phase_cost(run: Run, database_url: str, sizes: list[int], batch: int) -> None:
    print(f"\nper-ticket cost with tickets already stored (batch of {batch} flat out, to ticket.routed):")
    stages = ["ticket.created"] + (["ticket.routed"] if "routing" in run.stack.names else [])
    for size in sizes:
        loaded, took = await preload(database_url, size)
        print(f"  loaded {loaded} rows with COPY in {took:.1f}s", flush=True)
        cpu0 = {name: cpu_seconds(run.stack.pid(name)) for name in run.stack.names}
        start = time.perf_counter()
        exts = await run.send(batch)
        await run.wait(exts, stages, 60)
        elapsed = time.perf_counter() - start
        lat = run.stage_latencies(exts, stages[-1])
        intake_cpu = (cpu_seconds(run.stack.pid("intake")) - cpu0["intake"]) / batch * 1000
        total_cpu = sum(cpu_seconds(run.stack.pid(n)) - cpu0[n] for n in run.stack.names) / batch * 1000
        print(f"  {size:>9} stored: {batch / elapsed:5.0f} tickets/s to {stages[-1]}, "
              f"intake CPU {intake_cpu:.2f} ms/ticket, all services {total_cpu:.2f} ms/ticket, "
              f"p50 {ms(lat, 50)} ms", flush=True)


async def main_async(a: argparse.Namespace) -> None:
    print(f"bench_e2e: {'quick' if a.quick else 'full'} run at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
          f"{os.cpu_count()} CPUs, load average before: {os.getloadavg()[0]:.1f} (other work skews every figure)")
    for name in skipped():
        print(f"  skipped: {name} (services/{name}/__main__.py not present yet): its stages are not measured")
    if a.db_socket:
        print(f"  Postgres through its unix socket in {a.db_socket} (not 127.0.0.1:5432)")
    async with environment("bench_e2e", db_socket=a.db_socket) as env:
        await ensure_db(env["DATABASE_URL"])
        print("\nsubstrate ceiling (idle machine, one process):", flush=True)
        amqp = await amqp_ceiling(env["AMQP_URL"], a.ceiling_msgs)
        print(f"  aio-pika publish with confirms + consume with acks (quorum queue): {amqp:.0f} msgs/s")
        pg1 = await pg_ceiling(env["DATABASE_URL"], a.pg_seconds, 1)
        pg8 = await pg_ceiling(env["DATABASE_URL"], a.pg_seconds, 8)
        print(f"  asyncpg single-row commits: {pg1:.0f}/s on 1 connection, {pg8:.0f}/s on 8", flush=True)

        stack = Stack(env, extra_env={"HELPDESK_LOG_LEVEL": "WARNING"})
        await stack.start()
        print(f"\nservices: {', '.join(f'{n}:{p}' for n, p in stack.ports.items())} (logs in {stack.log_dir})")
        stages = [s for s, svc in STAGES if svc in stack.names]
        try:
            async with Recorder(env["AMQP_URL"], durable=False) as rec, IntakePublisher(env["AMQP_URL"], window=500) as pub:
                run = Run(stack, rec, pub, env["DATABASE_URL"])
                await run.wait(await run.send(50), stages, 30)  # warm-up
                await asyncio.sleep(2)  # its tail
                await phase_idle(run)
                for r in a.rates:  # a rate the pipeline sustains shows per-ticket latency, 100/s the target
                    await phase_latency(run, a.latency_seconds, stages, r)
                rate = await phase_flat_out(run, a.tickets, stages, a.profile)
                print(f"\n  ratio to the ceiling: {rate / amqp:.3f} of aio-pika msgs/s, "
                      f"{rate / pg8:.3f} of asyncpg commits/s (8 connections)")
                if a.sizes:
                    await phase_cost(run, env["DATABASE_URL"], a.sizes, a.cost_batch)
        finally:
            await stack.stop()
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


def main() -> None:
    # TERM behaves like Ctrl-C: the services are stopped and the vhost and database dropped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small figures in about a minute")
    p.add_argument("--tickets", type=int)
    p.add_argument("--latency-seconds", type=float)
    p.add_argument("--rates", default="10,50,100", help="fixed publish rates for the latency phase (tickets/s)")
    p.add_argument("--sizes", help="stored-ticket counts for the per-ticket cost (comma-separated, 0 = skip)")
    p.add_argument("--cost-batch", type=int)
    p.add_argument("--profile", type=Path, help="write py-spy raw profiles of the flat-out run here")
    p.add_argument("--db-socket", metavar="DIR",
                   help="reach Postgres through its unix socket in DIR (e.g. /var/run/postgresql), not TCP")
    p.add_argument("--native", action="store_true",
                   help="with --profile: include native frames (asyncpg's Cython protocol, orjson, pydantic-core)")
    a = p.parse_args()
    global NATIVE
    NATIVE = a.native
    a.rates = [float(r) for r in a.rates.split(",") if float(r) > 0]
    a.tickets = a.tickets or (1000 if a.quick else 5000)
    a.latency_seconds = a.latency_seconds or (5 if a.quick else 20)
    a.sizes = [int(s) for s in (a.sizes or ("10000,100000" if a.quick else "10000,1000000")).split(",") if int(s)]
    a.cost_batch = a.cost_batch or (300 if a.quick else 1000)
    a.ceiling_msgs = 5000 if a.quick else 20000
    a.pg_seconds = 2 if a.quick else 5
    asyncio.run(main_async(a))


if __name__ == "__main__":
    main()
