"""Fault injection (``make chaos``): send tickets and resolve half of them while every service is
killed with SIGKILL and restarted in turn, optionally restart RabbitMQ and Postgres, inject
malformed bodies over AMQP and HTTP; then count, from the events and the databases, that nothing
was lost or doubled.

    python -m scripts.chaos [--tickets 10000] [--malformed 10000] [--rounds 3] [--rate 60]
                            [--restart-infra]

``--restart-infra`` restarts the machine's RabbitMQ (``rabbitmqctl stop_app/start_app``) and
Postgres (``pg_ctlcluster <version> main restart``) once each; override the commands with
``CHAOS_RABBIT_RESTART`` / ``CHAOS_PG_RESTART`` (shell). It disturbs everything else using them,
so it is off unless asked for. Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import orjson

from scripts import malformed
from scripts.harness import (
    CUSTOMER_TEMPLATES, DeadLetters, IntakePublisher, Recorder, Stack, environment, external_id, list_queues,
    outbox_unsent, skipped, ticket_body,
)

RESOLVE_SOLUTION = "replaced power module PWR-01 and verified start-up"


@dataclass
class Config:
    tickets: int = 10_000
    malformed: int = 10_000
    rounds: int = 3
    rate: float = 60.0  # tickets/s while faults are injected
    http_share: float = 0.1  # tickets sent over HTTP instead of AMQP
    restart_infra: bool = False
    settle_s: float = 120.0  # give up waiting after this long without progress
    down_s: float = 1.0  # a killed service stays down this long
    huge_bytes: int = 200_000
    seed: int = 8

    @classmethod
    def small(cls) -> Config:
        """The ``make test`` version: hundreds of tickets, one kill per service, no infra restarts."""
        # settle_s outlasts notification's 60 s delivery lease (a killed worker's sends come due after it)
        return cls(tickets=300, malformed=200, rounds=1, rate=40.0, settle_s=75.0, huge_bytes=100_000)


@dataclass
class Report:
    counts: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def line(self, text: str) -> None:
        self.lines.append(text)
        print(text, flush=True)

    def check(self, label: str, bad: int, detail: str) -> None:
        self.counts[label] = bad
        self.line(f"  {'ok  ' if bad == 0 else 'FAIL'} {label:<44} {detail}")
        if bad:
            self.problems.append(f"{label}: {detail}")


class Chaos:
    def __init__(self, cfg: Config, env: dict[str, str], stack: Stack, rec: Recorder, dead: DeadLetters) -> None:
        self.cfg, self.env, self.stack, self.rec, self.dead = cfg, env, stack, rec, dead
        self.rnd = random.Random(cfg.seed)
        self.exts: list[str] = []
        self.to_resolve: set[str] = set()  # external ids whose ticket gets a resolve command
        self.resolve_sent: set[str] = set()
        self.bad_amqp: dict[str, str] = {}  # message id -> kind
        self.http_status: Counter[str] = Counter()
        self.http_other_shape = 0
        self.http_unexplained = 0
        self.http_shapes: Counter[str] = Counter()
        self.infra: list[str] = []
        self.producing = True
        self.headers = {"X-API-Key": env["HELPDESK_API_KEYS"].split(",")[0].split(":")[1]}

    # -------------------------------------------------------------- load
    async def produce(self, pub: IntakePublisher) -> None:
        cfg, start = self.cfg, time.perf_counter()
        http_tasks = []
        async with httpx.AsyncClient(headers=self.headers, timeout=10) as client:
            for i in range(cfg.tickets):
                ext = external_id("chaos")
                self.exts.append(ext)
                if i % 2 == 0:
                    self.to_resolve.add(ext)
                if self.rnd.random() < cfg.http_share:
                    http_tasks.append(asyncio.create_task(self._post_ticket(client, ext, i)))
                else:
                    await pub.publish("helpdesk.intake", "intake.web", ticket_body(ext, i))
                await asyncio.sleep(max(0.0, start + (i + 1) / cfg.rate - time.perf_counter()))
            await pub.flush()
            await asyncio.gather(*http_tasks)

    async def _post_ticket(self, client: httpx.AsyncClient, ext: str, i: int) -> None:
        """POST until intake answers 2xx (same external_id: idempotent through kills)."""
        deadline = time.monotonic() + 300
        while True:
            with contextlib.suppress(httpx.HTTPError):
                r = await client.post(f"{self.stack.url('intake')}/v1/tickets", content=ticket_body(ext, i),
                                      headers={"Content-Type": "application/json"})
                if r.status_code < 300:
                    return
                if r.status_code < 500:
                    raise RuntimeError(f"valid ticket refused: {r.status_code} {r.text[:200]}")
            if time.monotonic() > deadline:
                raise RuntimeError("intake unreachable for 300s")
            await asyncio.sleep(0.5)

    async def resolve(self, pub: IntakePublisher) -> None:
        """Resolve half the tickets (over AMQP, with a command_id) once routing has placed them."""
        while self.producing or len(self.resolve_sent) < len(self.to_resolve):
            for ext in list(self.to_resolve - self.resolve_sent):
                ticket_no = self.rec.ticket_of.get(ext)
                if ticket_no and (ticket_no, "ticket.routed") in self.rec.first:
                    self.resolve_sent.add(ext)
                    await pub.publish("helpdesk.commands", "ticket.resolve", orjson.dumps({
                        "ticket_no": ticket_no, "actor": "chaos-agent", "command_id": f"resolve-{ext}",
                        "outcome": "resolved", "solution": RESOLVE_SOLUTION}))
            await pub.flush()
            await asyncio.sleep(0.5)
            if not self.producing and self.stalled:
                return

    stalled = False

    async def inject(self, pub: IntakePublisher) -> None:
        """Half the malformed bodies over AMQP (tagged message ids), half over HTTP."""
        n_amqp = self.cfg.malformed // 2
        for i in range(n_amqp):
            kind = malformed.KINDS[i % len(malformed.KINDS)]
            target, body = malformed.body(kind, self.rnd, huge_bytes=self.cfg.huge_bytes)
            mid = f"chaos-bad-{i}-{kind}"
            self.bad_amqp[mid] = kind
            if target == "ticket":
                await pub.publish("helpdesk.intake", "intake.web", body, message_id=mid)
            else:
                await pub.publish("helpdesk.commands", "ticket." + target.split(":")[1], body, message_id=mid)
            if i % 50 == 49:
                await asyncio.sleep(0.05)  # spread over the run, between the kills
        await pub.flush()
        sem = asyncio.Semaphore(8)
        async with httpx.AsyncClient(headers=self.headers, timeout=15) as client:
            async def one(i: int) -> None:
                async with sem:
                    kind = malformed.KINDS[i % len(malformed.KINDS)]
                    target, body = malformed.body(kind, self.rnd, huge_bytes=self.cfg.huge_bytes)
                    path = "/v1/tickets" if target == "ticket" else f"/v1/tickets/20000101000001/{target[8:]}"
                    await self._post_bad(client, path, body)
            await asyncio.gather(*(one(i) for i in range(self.cfg.malformed - n_amqp)))

    async def _post_bad(self, client: httpx.AsyncClient, path: str, body: bytes) -> None:
        deadline = time.monotonic() + 300
        while True:
            try:
                r = await client.post(self.stack.url("intake") + path, content=body,
                                      headers={"Content-Type": "application/json"})
            except httpx.HTTPError:  # intake is being killed: the body still needs a verdict
                if time.monotonic() > deadline:
                    self.http_status["unreachable"] += 1
                    return
                await asyncio.sleep(0.5)
                continue
            self.http_status[str(r.status_code)] += 1
            if 400 <= r.status_code < 500:
                try:
                    answer = r.json()
                except ValueError:
                    answer = None
                errors = answer.get("errors") if isinstance(answer, dict) else None
                if errors and all(isinstance(e, dict) and e.get("problem") for e in errors):
                    return
                self.http_other_shape += 1
                self.http_shapes[f"{r.status_code} {r.text[:60]}"] += 1
                if not (isinstance(answer, dict) and answer.get("detail")):
                    self.http_unexplained += 1  # a 4xx that does not say why
            return

    # -------------------------------------------------------------- faults
    async def kill_loop(self) -> None:
        names = self.stack.names
        total = self.cfg.rounds * len(names)
        gap = max(1.0, self.cfg.tickets / self.cfg.rate / (total + 1))
        k = 0
        for rnd in range(self.cfg.rounds):
            for name in names:
                await asyncio.sleep(gap)
                await self.stack.kill9(name)
                await asyncio.sleep(self.cfg.down_s)
                took = await self.stack.restart(name)
                k += 1
                print(f"  [{time.strftime('%H:%M:%S')}] kill -9 {name} (round {rnd + 1}): healthy again after "
                      f"{took:.1f}s", flush=True)
            if self.cfg.restart_infra and rnd == 0:
                await self.restart("rabbitmq", os.environ.get("CHAOS_RABBIT_RESTART")
                                   or "rabbitmqctl -q stop_app && sleep 2 && rabbitmqctl -q start_app")
            if self.cfg.restart_infra and rnd == min(1, self.cfg.rounds - 1):
                await self.restart("postgres", os.environ.get("CHAOS_PG_RESTART") or pg_restart_command())

    async def restart(self, what: str, command: str) -> None:
        start = time.monotonic()
        proc = await asyncio.create_subprocess_shell(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, err = await proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"restarting {what} failed: {err.decode()[:300]}")
        for name in self.stack.names:
            await self.stack.wait_healthy(name, timeout=120)
        self.infra.append(what)
        print(f"  [{time.strftime('%H:%M:%S')}] restarted {what}; every service healthy after "
              f"{time.monotonic() - start:.1f}s", flush=True)

    # -------------------------------------------------------------- waiting and checks
    def outstanding(self) -> list[str]:
        """The expected facts not seen yet (``ticket_no fact``)."""
        names, rec, left = self.stack.names, self.rec, []
        for ext in self.exts:
            t = rec.ticket_of.get(ext)
            if t is None:
                left.append(f"{ext} ticket.created")
                continue
            if "routing" in names and (t, "ticket.routed") not in rec.first:
                left.append(f"{t} ticket.routed")
            for metric in ("first_response", "resolution") if "sla" in names else ():
                if rec.count(t, "sla.started", metric) == 0:
                    left.append(f"{t} sla.started {metric}")
            if "notification" in names and rec.count(t, "notification.sent", "ticket_received") == 0:
                left.append(f"{t} notification.sent ticket_received")
            if ext in self.to_resolve and rec.count(t, "ticket.resolved") == 0:
                left.append(f"{t} ticket.resolved")
        left += [f"{mid} dead letter" for mid in self.bad_amqp if mid not in self.dead.by_message_id]
        return left

    async def settle(self) -> list[str]:
        last, since = -1, time.monotonic()
        while True:
            left = self.outstanding()
            if not left:
                await asyncio.sleep(3)  # let late duplicates show up before counting
                return left
            if len(left) != last:
                if last == -1 or int(time.monotonic()) % 30 == 0:
                    print(f"  [{time.strftime('%H:%M:%S')}] {len(left)} expected facts outstanding, e.g. {left[:2]}",
                          flush=True)
                last, since = len(left), time.monotonic()
            elif time.monotonic() - since > self.cfg.settle_s:
                return left
            await asyncio.sleep(1)


async def drained(vhost: str, *, patience: float) -> tuple[list[dict[str, Any]], float]:
    """Wait while the queues' backlog shrinks (a slow consumer is not a stuck one); give up after
    ``patience`` seconds without progress."""
    start = since = time.monotonic()
    best = None
    while True:
        queues = list_queues(vhost)
        total = sum(q["messages_ready"] + q["messages_unacknowledged"] for q in queues)
        if total == 0:
            await asyncio.sleep(2)
            queues = list_queues(vhost)  # again: a message in flight between two samples
            if sum(q["messages_ready"] + q["messages_unacknowledged"] for q in queues) == 0:
                return queues, time.monotonic() - start
        if best is None or total < best:
            best, since = total, time.monotonic()
        elif time.monotonic() - since > patience:
            return queues, time.monotonic() - start
        await asyncio.sleep(3)


def pg_restart_command() -> str:
    out = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=True).stdout.split()
    return f"pg_ctlcluster {out[0]} {out[1]} restart -m fast"


async def check(ch: Chaos, report: Report) -> None:
    rec, names, env = ch.rec, ch.stack.names, ch.env
    # Count only once every queue is empty (or has stopped draining): late copies are counted too.
    queues, waited = await drained(env["AMQP_URL"].rsplit("/", 1)[1], patience=ch.cfg.settle_s)
    conn = await asyncpg.connect(env["DATABASE_URL"])
    try:
        rows = await conn.fetch("SELECT external_id, count(*) AS n, min(status) AS status FROM intake.tickets"
                                " WHERE external_id LIKE 'chaos-%' GROUP BY external_id")
    finally:
        await conn.close()
    if "notification" in names:  # diagnostic only: where undelivered notifications stand
        conn = await asyncpg.connect(env["DATABASE_URL"])
        with contextlib.suppress(asyncpg.PostgresError):
            states = await conn.fetch("SELECT status, count(*) AS n, max(next_attempt_at) - now() AS due_in"
                                      " FROM notification.deliveries GROUP BY status")
            report.line("       (notification deliveries: " + ", ".join(
                f"{r['status']} {r['n']}" + (f" next due in {r['due_in']}" if r["status"] == "pending" else "")
                for r in states) + ")")
        await conn.close()
    stored = {r["external_id"]: r for r in rows}
    missing = sum(1 for e in ch.exts if e not in stored)
    doubled = sum(1 for r in rows if r["n"] > 1)
    report.check("tickets stored exactly once (intake DB)", missing + doubled,
                 f"{len(stored)}/{len(ch.exts)} stored, missing {missing}, duplicated {doubled}")
    not_resolved = sum(1 for e in ch.to_resolve if e in stored and stored[e]["status"] not in ("resolved", "closed"))
    report.check("resolved tickets resolved in intake DB", not_resolved,
                 f"{len(ch.to_resolve) - not_resolved}/{len(ch.to_resolve)} resolved")
    tickets = {e: rec.ticket_of.get(e) for e in ch.exts}

    def once(label: str, etype: str, key: str = "", subset: set[str] | None = None) -> None:
        want = [t for e, t in tickets.items() if subset is None or e in subset]
        zero = sum(1 for e, t in tickets.items() if (subset is None or e in subset) and
                   (t is None or rec.count(t, etype, key) == 0))
        many = sum(1 for t in want if t and rec.count(t, etype, key) > 1)
        report.check(label, zero + many, f"{len(want) - zero - many}/{len(want)} once, missing {zero}, "
                                         f"more than one {many}")

    once("ticket.created exactly once", "ticket.created")
    if "routing" in names:
        once("ticket.routed (reason created) exactly once", "ticket.routed", "created")
        later = Counter(s.key for s in rec.events.values() if s.type == "ticket.routed" and s.key != "created")
        report.line(f"       (later ticket.routed, a new placement each: {dict(later) or 0})")
    if "sla" in names:
        for metric in ("first_response", "resolution"):
            want = [t for t in tickets.values() if t]
            zero = sum(1 for t in tickets.values() if t is None or rec.count(t, "sla.started", metric) == 0)
            copies = sum(1 for t in want if rec.count(t, "sla.started", metric) > rec.distinct(t, "sla.started", metric))
            again = sum(1 for t in want if rec.distinct(t, "sla.started", metric) > 1)
            report.check(f"sla.started {metric} once (no copy of a fact)", zero + copies,
                         f"{len(want) - zero - again}/{len(tickets)} exactly once, missing {zero}, same fact "
                         f"twice {copies}; re-announced with a new due_at after routing: {again}")
    once("ticket.resolved once per resolved ticket", "ticket.resolved", subset=ch.to_resolve)
    if "notification" in names:
        pairs = [(t, k) for (t, etype, k) in rec.by_ticket if etype == "notification.sent" and k in CUSTOMER_TEMPLATES]
        many = sum(1 for t, k in pairs if rec.count(t, "notification.sent", k) > 1)
        per = Counter(k for _, k in pairs)
        report.check("customer notifications at most one each", many,
                     f"{len(pairs)} (ticket, template) pairs, more than one {many}; "
                     + ", ".join(f"{k} {v}" for k, v in sorted(per.items())))
    copies = sum(s.copies - 1 for s in rec.events.values())
    report.line(f"       (redelivered copies of an already-seen event id, de-duplicated by id: {copies})")

    amqp_missing = [m for m in ch.bad_amqp if m not in ch.dead.by_message_id]
    amqp_noreason = [m for m in ch.bad_amqp if not ch.dead.by_message_id.get(m, "x")]
    kinds = Counter(ch.bad_amqp[m] for m in amqp_missing)
    report.check("malformed AMQP dead-lettered with a reason", len(amqp_missing) + len(amqp_noreason),
                 f"{len(ch.bad_amqp) - len(amqp_missing) - len(amqp_noreason)}/{len(ch.bad_amqp)}, "
                 f"missing {len(amqp_missing)} {dict(kinds) or ''}, without reason {len(amqp_noreason)}")
    n_http = sum(ch.http_status.values())
    refused = sum(v for k, v in ch.http_status.items() if k.isdigit() and 400 <= int(k) < 500) - ch.http_unexplained
    report.check("malformed HTTP refused with 4xx and a reason", n_http - refused,
                 f"{refused}/{n_http}; statuses {dict(sorted(ch.http_status.items()))}")
    report.line(f"       (4xx not in the contract's error shape {{\"errors\":[{{field, problem}}]}}: "
                f"{ch.http_other_shape} {dict(ch.http_shapes) or ''})")
    others = Counter(f"{queue}: {reason[:90]}" for mid, queue, reason in ch.dead.seen if mid not in ch.bad_amqp)
    report.check("no valid message dead-lettered", sum(others.values()),
                 f"{sum(others.values())} dead letters besides the injected ones"
                 f"{' (their processing is lost)' if others else ''}; without a reason header {ch.dead.without_reason}")
    for what, n in others.most_common(5):
        report.line(f"         {n:5d} x {what}")

    stuck = [f"{q['name']}={q['messages_ready'] + q['messages_unacknowledged']}" for q in queues
             if q["messages_ready"] + q["messages_unacknowledged"] > 0]
    idle = [q["name"] for q in queues if q["consumers"] == 0]
    report.check("no queue stuck (messages left or no consumer)", len(stuck) + len(idle),
                 f"{len(queues)} queues drained {waited:.0f}s after the last expected fact; "
                 f"with messages {stuck or 0}; without consumer {idle or 0}")
    unsent = await outbox_unsent(env["DATABASE_URL"], names)
    report.check("no outbox row left unsent", sum(unsent.values()), ", ".join(f"{k} {v}" for k, v in unsent.items()))
    health = {n: await ch.stack.healthy(n) for n in names}
    report.check("every service healthy", sum(not ok for ok in health.values()),
                 ", ".join(f"{n} {'ok' if ok else 'DOWN'}" for n, ok in health.items()))


async def run(cfg: Config) -> Report:
    report = Report()
    report.line(f"chaos: {cfg.tickets} tickets at {cfg.rate:.0f}/s (resolving half), {cfg.malformed} malformed bodies, "
                f"{cfg.rounds} kill -9 round(s), infra restarts {'on' if cfg.restart_infra else 'off'}")
    for name in skipped():
        report.line(f"  skipped: {name} (services/{name}/__main__.py not present yet): its checks are not made")
    async with environment("chaos") as env:
        # Small pools: five services (and the suites running beside make test) share max_connections.
        stack = Stack(env, extra_env={"HELPDESK_LOG_LEVEL": "WARNING",
                                      "HELPDESK_DB_POOL_MAX": os.environ.get("HELPDESK_DB_POOL_MAX", "4")})
        async with DeadLetters(env["AMQP_URL"]) as dead:
            await stack.start()
            try:
                async with Recorder(env["AMQP_URL"]) as rec, IntakePublisher(env["AMQP_URL"]) as pub, \
                        IntakePublisher(env["AMQP_URL"]) as bad_pub:
                    ch = Chaos(cfg, env, stack, rec, dead)
                    started = time.monotonic()
                    resolver = asyncio.create_task(ch.resolve(pub))
                    try:
                        await asyncio.gather(ch.produce(pub), ch.inject(bad_pub), ch.kill_loop())
                    finally:
                        ch.producing = False
                    print(f"  [{time.strftime('%H:%M:%S')}] load and faults done; waiting for the expected facts",
                          flush=True)
                    left = await ch.settle()
                    ch.stalled = True
                    await resolver
                    report.line(f"\nafter {time.monotonic() - started:.0f}s ({len(left)} expected facts still missing"
                                f"{': ' + ', '.join(left[:5]) if left else ''}); "
                                f"kill -9: {dict(stack.kills)}; infra restarts: {ch.infra or 'none'}; "
                                f"publish retries {pub.retries + bad_pub.retries}; "
                                f"service starts that failed and were retried: {len(stack.failed_starts)}")
                    for failure in stack.failed_starts:
                        report.line(f"       start failed: {failure}")
                    report.counts.update(kills=dict(stack.kills), infra=ch.infra)
                    await check(ch, report)
            finally:
                await stack.stop()
    report.line(f"\nchaos: {'OK' if not report.problems else 'FAILED: ' + '; '.join(report.problems)}"
                f" (service logs: {stack.log_dir})")
    return report


def dump_tasks(*_: object) -> None:
    """``kill -USR1 <pid>``: print where every asyncio task is waiting (a hung run explains itself)."""
    for task in asyncio.all_tasks():
        task.print_stack(limit=6, file=sys.stderr)


def main() -> None:
    # TERM behaves like Ctrl-C: the services are stopped and the vhost and database dropped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGUSR1, dump_tasks)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = Config()
    p.add_argument("--tickets", type=int, default=d.tickets)
    p.add_argument("--malformed", type=int, default=d.malformed)
    p.add_argument("--rounds", type=int, default=d.rounds)
    p.add_argument("--rate", type=float, default=d.rate)
    p.add_argument("--restart-infra", action="store_true", help="restart RabbitMQ and Postgres once each")
    p.add_argument("--small", action="store_true", help="the make-test size (300 tickets, one kill each)")
    a = p.parse_args()
    cfg = Config.small() if a.small else Config(tickets=a.tickets, malformed=a.malformed, rounds=a.rounds,
                                                 rate=a.rate)
    cfg.restart_infra = a.restart_infra
    report = asyncio.run(run(cfg))
    sys.exit(1 if report.problems else 0)


if __name__ == "__main__":
    main()
