"""``make bench-sla``: firing lateness and memory of the SLA service holding 1,000,000 open timers.

1. Creates its own vhost and database (``helpdesk_bench_sla_<random>``), migrates the ``sla`` schema
   and COPYs ``--timers`` open clocks into it: ``--due`` of them fall due during a ``--window``-second
   run, the rest days to weeks ahead.
2. Runs the service as a subprocess (``python -m services.sla``) so its RSS is read from ``/proc``.
3. Listens for ``sla.breached`` and reports, for the timers due during the run, the firing lateness
   (``breached_at - due_at``, when the service fired) and the delivery lateness (when the event
   reached a subscriber), p50 / p99 / max, plus any timer missed or fired twice, and peak RSS.
4. Stops the service and removes the vhost and database.

Target: p99 firing lateness <= 1 s, RSS <= 200 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aio_pika
import asyncpg
import httpx
import orjson

from scripts import harness
from shared import db
from shared.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = ROOT / "services" / "sla" / "migrations"
COLUMNS = ("ticket_no", "metric", "priority", "policy", "calendar", "target_s", "started_at", "open_since",
           "warned", "breached", "due_at", "fire_at")
TARGET_S = 3600.0


def rows(prefix: str, count: int, first: int, due_of):  # noqa: ANN001, ANN201
    for i in range(first, first + count):
        due = due_of()
        opened = due - timedelta(seconds=TARGET_S)
        yield (f"{prefix}{i:07d}", "resolution", "P2", "bench", "24x7", TARGET_S, opened, opened, True, False,
               due, due)


async def load(settings: Settings, args: argparse.Namespace) -> tuple[dict[str, datetime], datetime]:
    """Migrate, then COPY the far-future timers and the ones due during the run (from ``--startup-s``
    after loading); returns the latter's due times and the window's start."""
    await db.bootstrap(settings, "sla")
    conn = await asyncpg.connect(db.role_dsn(settings, "sla"))
    try:
        await db.migrate(conn, "sla", MIGRATIONS)
        far = args.timers - args.due
        now = datetime.now(UTC)
        t0 = time.monotonic()
        chunk = 200_000
        for first in range(0, far, chunk):
            await conn.copy_records_to_table(
                "clocks", schema_name="sla", columns=COLUMNS,
                records=rows("9999", min(chunk, far - first), first,
                             lambda: now + timedelta(days=2 + random.random() * 28)))
        window_start = datetime.now(UTC) + timedelta(seconds=args.startup_s)
        due_rows = list(rows("8888", args.due, 0,
                             lambda: window_start + timedelta(seconds=random.random() * args.window)))
        await conn.copy_records_to_table("clocks", schema_name="sla", columns=COLUMNS, records=due_rows)
        await conn.execute("ANALYZE sla.clocks")
        print(f"loaded {args.timers:,} open timers in {time.monotonic() - t0:.1f} s "
              f"({args.due:,} due in the {args.window:.0f} s window)", flush=True)
        return {r[0]: r[-1] for r in due_rows}, window_start
    finally:
        await conn.close()


class Sampler:
    def __init__(self, pid: int) -> None:
        self.pid, self.peak_kb, self.samples = pid, 0, []

    def sample(self) -> None:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    kb = int(line.split()[1])
                    self.peak_kb = max(self.peak_kb, kb)
                    self.samples.append(kb)
        except OSError:
            pass


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


async def run(args: argparse.Namespace) -> int:
    async with harness.environment("bench_sla") as benv:  # the shared harness: vhost and database, dropped after
        return await _run(args, benv["AMQP_URL"], benv["DATABASE_URL"])


async def _run(args: argparse.Namespace, amqp: str, dburl: str) -> int:
    settings = Settings(AMQP_URL=amqp, DATABASE_URL=dburl)
    proc: subprocess.Popen[bytes] | None = None
    try:
        for attempt in range(30):  # a shared Postgres may be short of connection slots for a moment
            try:
                due_at, window_start = await load(settings, args)
                break
            except asyncpg.TooManyConnectionsError:
                print("postgres has no free connection slot; retrying", flush=True)
                await asyncio.sleep(2 + attempt)
        else:
            raise RuntimeError("postgres never had a free connection slot")
        port = harness.free_port()
        env = {**os.environ, "AMQP_URL": amqp, "DATABASE_URL": dburl, "SLA_PORT": str(port),
               "HELPDESK_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1", "HELPDESK_DB_POOL_MAX": "5"}
        proc = subprocess.Popen([sys.executable, "-m", "services.sla"], cwd=ROOT, env=env)
        sampler = Sampler(proc.pid)
        async with httpx.AsyncClient() as client:
            for _ in range(600):
                sampler.sample()
                try:
                    if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("service did not become healthy")
        up_at = datetime.now(UTC)
        print(f"service up (pid {proc.pid}, port {port}), RSS {sampler.samples[-1] / 1024:.0f} MB", flush=True)
        # only timers that fall due while the service runs are measured
        due_tickets = {no for no, due in due_at.items() if due >= up_at}

        conn = await aio_pika.connect_robust(amqp)
        fired: dict[str, float] = {}
        delivered: dict[str, float] = {}
        dupes = 0
        try:
            ch = await conn.channel()
            ex = await ch.declare_exchange("helpdesk.events", aio_pika.ExchangeType.TOPIC, durable=True)
            q = await ch.declare_queue(exclusive=True, auto_delete=True)
            await q.bind(ex, routing_key="sla.breached")
            done = asyncio.Event()

            async def on(msg: aio_pika.abc.AbstractIncomingMessage) -> None:
                nonlocal dupes
                got = datetime.now(UTC)
                data = orjson.loads(msg.body)["data"]
                no = data["ticket_no"]
                if no not in due_tickets:
                    return
                if no in fired:
                    dupes += 1
                    return
                due = datetime.fromisoformat(data["due_at"])
                fired[no] = (datetime.fromisoformat(data["breached_at"]) - due).total_seconds()
                delivered[no] = (got - due).total_seconds()
                if len(fired) == len(due_tickets):
                    done.set()

            await q.consume(on, no_ack=True)
            end = window_start + timedelta(seconds=args.window + 30)
            while not done.is_set() and datetime.now(UTC) < end:
                sampler.sample()
                await asyncio.sleep(0.5)
            await asyncio.sleep(2.0)  # late duplicates, if any, arrive by now
        finally:
            await conn.close()
        sampler.sample()
        before = sum(1 for v in fired.values() if v < 0)
        print(f"\nSLA timer bench: {args.timers:,} open timers, {len(due_tickets):,} due during the run"
              f" ({len(due_at) - len(due_tickets)} fell due before the service was up: not measured)")
        print(f"  fired:      {len(fired):,} (missed {len(due_tickets) - len(fired)}, fired twice {dupes},"
              f" early {before})")
        for label, values in (("firing lateness   (breached_at - due_at)", list(fired.values())),
                              ("delivery lateness (received - due_at)   ", list(delivered.values()))):
            print(f"  {label}: p50 {pct(values, 50) * 1000:7.1f} ms  p99 {pct(values, 99) * 1000:7.1f} ms"
                  f"  max {max(values, default=float('nan')) * 1000:7.1f} ms")
        print(f"  service RSS: peak {sampler.peak_kb / 1024:.0f} MB, at end {sampler.samples[-1] / 1024:.0f} MB")
        ok = (pct(list(fired.values()), 99) <= 1.0 and sampler.peak_kb <= 200 * 1024
              and len(fired) == len(due_tickets) and dupes == 0)
        print(f"  target p99 <= 1 s, RSS <= 200 MB, none missed or doubled: {'MET' if ok else 'NOT MET'}")
        return 0 if ok else 1
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timers", type=int, default=1_000_000, help="open timers loaded")
    parser.add_argument("--due", type=int, default=20_000, help="of which due during the run")
    parser.add_argument("--window", type=float, default=60.0, help="seconds over which they fall due")
    parser.add_argument("--startup-s", type=float, default=15.0, help="allowance for the service to start")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
