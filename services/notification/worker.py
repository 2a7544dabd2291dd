"""The delivery worker: claims due deliveries, sends them, records the outcome.

A pass claims due rows with ``FOR UPDATE SKIP LOCKED`` (so any number of workers share the work)
and, in that short transaction, holds back what must wait (quiet hours, the recipient's rate
limit) and leases the rest (the attempt is counted; the lease is ``next_attempt_at``, so a crashed
worker's rows come due again). Sending happens outside any transaction and never while a broker
message is held. The outcome commits with its ``notification.sent`` / ``notification.failed``
event (outbox), together with the outcomes of the sends that finished meanwhile (``GroupCommit``: one
transaction and two statements for the lot, a failing one written alone); a final failure is then
published to ``helpdesk.dlx``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import orjson

from services.notification import contacts, domain, metrics, store
from services.notification.channels import Channel, Outgoing
from services.notification.config import NotificationSettings, RulesConfig
from services.notification.domain import DeliveryError
from services.notification.templates import Templates
from shared.batching import GroupCommit
from shared.dueloop import DueLoop
from shared.events import NotificationFailed, NotificationSent
from shared.masking import mask_text
from shared.runtime import Runtime
from shared.topology import DLX, EVENTS, REASON_HEADER

log = logging.getLogger(__name__)
SERVICE = "notification"
QUEUE = "notification.deliveries"
DEAD_LETTER_SWEEP_S = 60.0  # how often a worker looks for failed deliveries not yet dead-lettered


def utcnow() -> datetime:
    return datetime.now(UTC)


class Worker(DueLoop):
    """The delivery loop (``rt.add_loop``): woken by ``wake()`` when a batch planned deliveries, and by
    the next due moment (retries, held messages); ``worker_poll_s`` bounds a sleep."""

    grace_s = 10.0  # a stop lets the current pass finish its sends

    def __init__(self, rt: Runtime, *, cfg: RulesConfig, templates: Templates, opts: NotificationSettings,
                 tz: ZoneInfo, clock: Callable[[], datetime] = utcnow) -> None:
        super().__init__(name="notification-worker", listen_dsn=None, channel=None, max_sleep_s=opts.worker_poll_s)
        self.rt, self.cfg, self.templates, self.opts, self.tz, self.clock = rt, cfg, templates, opts, tz, clock
        self.channels: dict[str, Channel] = {}
        self.intake: contacts.IntakeContacts | None = None
        self._sem = asyncio.Semaphore(opts.worker_concurrency)
        self._outcomes: GroupCommit[tuple[dict[str, Any], store.Outcome]] = GroupCommit(self._write_outcomes)
        self._next_sweep = 0.0  # the first pass sweeps failed deliveries left undead-lettered
        # when the earliest pending row comes due, as this pass's claims and outcomes left them: the other
        # rows' next attempt (read with the claim), the holds and the retries it wrote. Only when to wake:
        # the rows themselves say what is due, and the loop never sleeps longer than ``worker_poll_s``
        # (another worker's rows, a lease that runs out)
        self._due: datetime | None = None

    def attach(self, *, channels: dict[str, Channel], intake: contacts.IntakeContacts) -> None:
        """The senders, made at start (they hold HTTP clients); the loop starts after this."""
        self.channels, self.intake = channels, intake

    def on_error(self, exc: Exception) -> None:  # database or broker down: rows stay, try again
        log.warning("delivery pass failed", extra={"error": repr(exc)})

    async def pass_once(self) -> float | None:
        self._due = None  # this pass's own (a failed pass's notes are dropped with it)
        while await self.send_due() >= self.opts.worker_batch and not self.stopping:
            pass
        if time.monotonic() >= self._next_sweep:  # a final failure dead-letters itself (``_deliver``): this
            # sweep takes what that could not (broker down, a process killed in between), not every pass
            await self.dead_letter_failed()
            self._next_sweep = time.monotonic() + DEAD_LETTER_SWEEP_S
        return None if self._due is None else (self._due - self.clock()).total_seconds()

    def _due_at(self, at: datetime | None) -> None:
        """Note a moment a pending row comes due (the next wake-up is the earliest of the pass)."""
        if at is not None and (self._due is None or at < self._due):
            self._due = at

    # ---- one pass ----

    async def send_due(self) -> int:
        """Claim a batch of due rows and send what may go now; returns how many rows it claimed."""
        ready, claimed = await self._claim(self.clock())
        customers = sorted({r["ticket_no"] for r in ready if r["recipient"] == contacts.CUSTOMER and r["ticket_no"]})
        known = await self.intake.lookup(customers) if customers and self.intake else {}
        # One ticket's messages to one recipient go one after another, in planning order (progress
        # before resolution); everything else goes concurrently (bounded by the semaphore).
        chains: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
        for row in sorted(ready, key=lambda r: r["id"]):
            chains.setdefault((row["rate_key"], row["ticket_no"]), []).append(row)

        async def in_order(chain: list[dict[str, Any]]) -> None:
            for row in chain:
                await self._deliver(row, known)

        results = await asyncio.gather(*(in_order(c) for c in chains.values()), return_exceptions=True)
        for exc in (r for r in results if isinstance(r, BaseException)):
            # The outcome could not be recorded: the row's lease runs out and it is sent again.
            log.warning("delivery outcome not recorded", extra={"error": repr(exc)})
        return claimed

    async def _claim(self, now: datetime) -> tuple[list[dict[str, Any]], int]:
        lease_until = now + timedelta(seconds=self.opts.lease_s)
        async with self.rt.pool.acquire() as conn, conn.transaction():  # no events, no inbox: a plain one
            rows, next_other = await store.lock_due(conn, now=now, limit=self.opts.worker_batch)
            self._due_at(next_other)
            quiet = {r["id"]: until for r in rows if (until := self._quiet_until(r, now)) is not None}
            # the recipients with a limit, locked in one order (no deadlock between workers), then what
            # was attempted to them in the window: two statements for the claim
            keys = sorted({r["rate_key"] for r in rows
                           if r["id"] not in quiet and domain.rate_limit_for(self.cfg, r["recipient"]) > 0})
            window: dict[str, list[tuple[int, datetime]]] = {}
            if keys:
                await store.lock_rate_keys(conn, rate_keys=keys)
                window = await store.attempts_in_window(
                    conn, rate_keys=keys, since=now - timedelta(seconds=self.cfg.rate_limit.window_s))
            ready, holds = [], []
            leased: dict[str, int] = {}  # rate key -> rows of this claim let go (attempted now, below)
            for row in sorted(rows, key=lambda r: r["rate_key"]):
                if row["id"] in quiet:
                    reason, until = "quiet_hours", quiet[row["id"]]
                else:
                    reason, until = self._rate_hold(row, now, window, leased=leased.get(row["rate_key"], 0))
                if until is not None:
                    holds.append((row["id"], until, reason))
                    continue
                ready.append(row)
                leased[row["rate_key"]] = leased.get(row["rate_key"], 0) + 1
            await store.hold(conn, holds)  # what must wait: one statement for the claim
            for _, until, _ in holds:
                self._due_at(until)
            for _, _, reason in holds:
                metrics.HELD.labels(reason).inc()
            if ready:  # count the attempts and lease the rows: one statement
                attempts = await store.start_attempts(conn, ids=[r["id"] for r in ready], now=now,
                                                      lease_until=lease_until)
                for row in ready:
                    row["attempt"] = attempts[row["id"]]
        return ready, len(rows)

    def _quiet_until(self, row: dict[str, Any], now: datetime) -> datetime | None:
        """The end of the quiet hours ``row`` must wait for (None: it need not)."""
        if row["quiet"] and not row["urgent"]:
            return domain.quiet_until(now, self.cfg.quiet_hours, self.tz)
        return None

    def _rate_hold(self, row: dict[str, Any], now: datetime, window: dict[str, list[tuple[int, datetime]]], *,
                   leased: int = 0) -> tuple[str, datetime | None]:
        """Until when ``row`` must wait for its recipient's rate limit (None: it may go now). ``window``:
        the attempts to each locked rate key in the window; ``leased``: rows to the same rate key this
        claim already lets go, attempted now but not yet written."""
        limit = domain.rate_limit_for(self.cfg, row["recipient"])
        if limit <= 0:
            return "", None
        others = [at for i, at in window.get(row["rate_key"], ()) if i != row["id"]]  # other deliveries only
        count, oldest = len(others), min(others, default=None)
        if leased:
            count, oldest = count + leased, now if oldest is None else min(oldest, now)
        return "rate_limit", domain.rate_hold_until(sent_in_window=count, oldest=oldest, limit=limit,
                                                    rate=self.cfg.rate_limit)

    async def _deliver(self, row: dict[str, Any], known: dict[str, Any]) -> None:
        channel = self.channels[row["channel"]]
        masked: str | None = None
        error: DeliveryError | None = None
        async with self._sem:
            started = time.perf_counter()
            try:
                recipient = await contacts.resolve(row["recipient"], ticket_no=row["ticket_no"], cfg=self.cfg,
                                                   intake=self.intake, known=known)  # type: ignore[arg-type]
                masked = recipient.masked(channel.address)
                message = self.templates.render(
                    row["template"], channel=row["channel"], language=recipient.language or row["language"],
                    context={**row["context"], "name": recipient.name, **recipient.extra})
                await channel.send(Outgoing(row["id"], row["event_id"], row["event_type"], row["ticket_no"],
                                            row["template"], recipient, message))
            except DeliveryError as exc:
                error = exc
            except Exception as exc:  # noqa: BLE001 - a bug or an odd peer: retry, the limit still applies
                error = DeliveryError(f"{type(exc).__name__}: {exc}"[:300])
            elapsed = time.perf_counter() - started
        metrics.SEND_SECONDS.labels(row["channel"]).observe(elapsed)
        await self._record(row, error, masked or row["recipient"].removeprefix("staff:"), int(elapsed * 1000))

    async def _record(self, row: dict[str, Any], error: DeliveryError | None, masked: str, ms: int) -> None:
        now, attempt, ch = self.clock(), row["attempt"], row["channel"]
        final = error is not None and (error.permanent or attempt >= self.cfg.retry.max_attempts)
        reason = mask_text(error.reason) if error else None
        if error is None:
            outcome = store.Outcome(row["id"], attempt, "sent", now, masked, ms)
        elif final:
            outcome = store.Outcome(row["id"], attempt, "failed", now, masked, ms, error=reason or "")
        else:
            next_at = now + timedelta(seconds=domain.backoff_s(attempt, self.cfg.retry))
            outcome = store.Outcome(row["id"], attempt, "retry", now, masked, ms, error=reason or "", next_at=next_at)
            self._due_at(next_at)
        await self._outcomes.submit((row, outcome))
        result = "sent" if error is None else ("failed" if final else "retry")
        metrics.ATTEMPTS.labels(ch, result).inc()
        if result != "retry":
            metrics.NOTIFICATIONS.labels(ch, result).inc()
        if error is not None:
            log.warning("delivery attempt failed", extra={"delivery_id": row["id"], "ticket_no": row["ticket_no"],
                                                          "channel": ch, "attempt": attempt, "final": final,
                                                          "reason": reason})
        if final:
            await self.dead_letter_failed()

    async def _write_outcomes(self, items: list[tuple[dict[str, Any], store.Outcome]]) -> None:
        """The outcomes of many sends, with their ``notification.sent`` / ``notification.failed`` events,
        in one unit of work (``GroupCommit`` gathers them)."""
        async with self.rt.unit() as u:
            await store.record_outcomes(u.conn, [o for _, o in items])
            for row, o in items:
                if o.outcome == "retry":
                    continue
                common = {"channel": row["channel"], "template": row["template"], "recipient": o.recipient_masked,
                          "attempt": o.attempt}
                u.emit(row["ticket_no"], NotificationSent(**common) if o.outcome == "sent"
                       else NotificationFailed(**common, error=o.error))

    # ---- dead letters ----

    async def dead_letter_failed(self, batch: int = 100) -> int:
        """Publish every failed delivery not yet dead-lettered to ``helpdesk.dlx`` (reason in headers)."""
        total = 0
        while True:
            async with self.rt.pool.acquire() as conn, conn.transaction():  # no events: a plain one
                rows = await store.lock_undead(conn, limit=batch)
                for r in rows:
                    await self._publish_dead_letter(r)
                if rows:
                    await store.mark_dead_lettered(conn, ids=[r["id"] for r in rows], now=self.clock())
            total += len(rows)
            if len(rows) < batch:
                return total

    async def _publish_dead_letter(self, r: asyncpg.Record) -> None:
        reason = f"notification failed after {r['attempts']} attempt(s): {r['last_error']}"
        body = orjson.dumps({
            "delivery_id": r["id"], "event_id": r["event_id"], "event_type": r["event_type"],
            "ticket_no": r["ticket_no"], "channel": r["channel"], "template": r["template"],
            "recipient": r["recipient_masked"], "attempts": r["attempts"], "error": r["last_error"],
            "failed_at": r["failed_at"].isoformat() if r["failed_at"] else None,
        })
        await self.rt.broker.publish(
            body, exchange=DLX, routing_key=r["event_type"], persist=True, mandatory=False,
            message_id=f"notification-delivery-{r['id']}", content_type="application/json",
            headers={REASON_HEADER: mask_text(reason)[:2000], "x-helpdesk-queue": QUEUE,
                     "x-original-exchange": EVENTS.name, "x-original-routing-key": r["event_type"]},
        )
