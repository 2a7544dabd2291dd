"""Survey's use cases: each is one unit of work (``rt.unit``) holding the state change, its events and its inbox row."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from services.survey import domain, metrics, store
from services.survey.domain import SurveyAnswer, Timing, Verdict
from services.survey.events import SurveyCompletedScored, SurveyNegativeFlagged
from shared.envelope import CloudEvent
from shared.events import (
    SurveyCancelled, SurveyExpired, SurveyReminder, SurveySent,
    TicketCreated, TicketReopened, TicketResolved,
)
from shared.runtime import Runtime
from shared.unit import Unit, Within

SERVICE = "survey"
CONSUMER = "survey.tickets"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Policy:
    """What the use cases need besides the pool: timing, where links point, the repeat window."""

    timing: Timing
    base_url: str
    window_days: int = 30


def _planned(row: asyncpg.Record, changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` plus the row's next due moment after them."""
    return {**changes, "due_at": domain.due_at({**dict(row), **changes})}


# ---- events in ----------------------------------------------------------------------------------


_CREATED = (SERVICE, "ticket.created")
"""``u.memo`` key: {ticket_no: store.Customer} staged by this transaction's ``record_ticket`` (the last one
of a ticket), written at the flush; ``_ticket`` lays it over the row the table still holds."""


async def record_ticket(rt: Runtime, *, event: CloudEvent, within: Within = None) -> None:
    """Remember the ticket's customer and language; a complaint joins the customer's history. Both rows
    are staged (``store.set_customers``, ``store.add_histories``) and written at the flush, so a batch
    of ``ticket.created`` costs one upsert of its tickets, not one each; a later event of the same ticket
    in the batch (``schedule``) reads the staged values through ``_ticket``."""
    data = TicketCreated.model_validate(event.data)
    # the contract's keyed hash when intake gave one (every ticket of a customer shares it)
    key = data.customer_key or domain.customer_key(data.customer.model_dump())
    async with rt.unit(consumer=CONSUMER, event=event, within=within) as u:
        if u.duplicate:
            return
        row = store.Customer(ticket_no=event.ticket_no, customer_key=key,
                             language=domain.language(data.customer.language), complaint=data.complaint is not None,
                             created_at=data.created_at)
        u.stage(store.set_customers, row)
        u.memo.setdefault(_CREATED, {})[event.ticket_no] = row
        if key and data.complaint is not None:
            u.stage(store.add_histories, (key, event.ticket_no, "complaint", data.received_at))


async def _ticket(u: Unit, ticket_no: str) -> dict[str, Any]:
    """The ticket's row, locked (``store.lock_ticket``), as this transaction sees it: a ``ticket.created``
    that an earlier unit of it staged (not written before the flush) overrides the stub's customer fields."""
    row = dict(await store.lock_ticket(u.conn, ticket_no=ticket_no))
    staged = u.memo.get(_CREATED, {}).get(ticket_no)
    return row if staged is None else {**row, **staged._asdict(), "known": True}


async def schedule(rt: Runtime, policy: Policy, *, event: CloudEvent, now: datetime,
                   within: Within = None) -> str | None:
    """A resolution gets a survey, sent at once when its delay has passed, else by the scheduler.
    Returns the survey's status, or None when nothing was created (duplicate, or superseded)."""
    data = TicketResolved.model_validate(event.data)
    ticket_no, seq = event.ticket_no, int(event.data.get("seq") or 0)
    async with rt.unit(consumer=CONSUMER, event=event, within=within) as u:
        if u.duplicate:
            return None
        ticket = await _ticket(u, ticket_no)
        live = await store.live_for_ticket(u.conn, ticket_no=ticket_no)
        decision = domain.on_resolution(seq=seq, reopened_seq=ticket["reopened_seq"],
                                        live_seq=live["resolution_seq"] if live else None)
        if decision == "skip":
            log.info("resolution already superseded; no survey", extra={"ticket_no": ticket_no, "seq": seq})
            return None
        was_sent = None
        if decision == "supersede":
            was_sent = await _withdraw(u, live, reason="superseded by a later resolution", now=now)
        complaint = data.complaint or ticket["complaint"]
        row = await store.insert_survey(
            u.conn, ticket_no=ticket_no, token=domain.new_token(), language=ticket["language"],
            customer_key=ticket["customer_key"], complaint=complaint, resolution_event=event.id,
            resolution_seq=seq, resolved_at=data.at, send_at=policy.timing.send_at(data.at, complaint=complaint),
        )
        if domain.next_step(row, now) == "send":
            row = await _send(u, policy, row, now)
        if was_sent is not None:
            u.after_commit(metrics.CANCELLED.labels(str(was_sent).lower()).inc)
        if row["status"] == "sent":
            u.after_commit(metrics.SENT.labels(str(row["complaint"]).lower()).inc)
    return row["status"]


async def cancel_on_reopen(rt: Runtime, *, event: CloudEvent, now: datetime, within: Within = None) -> bool:
    """A reopened ticket was not really resolved: its pending or unanswered survey is withdrawn (the
    link then says so), and the next resolution brings a new one. Answered surveys stay."""
    data = TicketReopened.model_validate(event.data)
    seq = int(event.data.get("seq") or 0)
    async with rt.unit(consumer=CONSUMER, event=event, within=within) as u:
        if u.duplicate:
            return False
        await store.lock_ticket(u.conn, ticket_no=event.ticket_no)
        await store.set_reopened(u.conn, ticket_no=event.ticket_no, seq=seq)
        live = await store.live_for_ticket(u.conn, ticket_no=event.ticket_no)
        if not domain.reopen_withdraws(seq=seq, live_seq=live["resolution_seq"] if live else None):
            return False
        was_sent = await _withdraw(u, live, reason=f"ticket reopened: {data.reason}", now=now)
        u.after_commit(metrics.CANCELLED.labels(str(was_sent).lower()).inc)
    return True


async def _withdraw(u: Unit, live: asyncpg.Record, *, reason: str, now: datetime) -> bool:
    """Cancel a live survey and say so (``survey.cancelled``); True when its link had been sent."""
    was_sent = live["status"] == "sent"
    await store.update(u.conn, survey_id=live["survey_id"], status="cancelled", ended_at=now, due_at=None,
                       cancel_reason=reason)
    u.emit(live["ticket_no"], SurveyCancelled(
        survey_id=str(live["survey_id"]), reason=reason, was_sent=was_sent))
    return was_sent


# ---- due work (the scheduler) -------------------------------------------------------------------


async def _send(u: Unit, policy: Policy, row: asyncpg.Record, now: datetime) -> asyncpg.Record:
    remind_at, expires_at = policy.timing.after_send(now)
    row = await store.update(u.conn, survey_id=row["survey_id"], **_planned(row, {
        "status": "sent", "sent_at": now, "remind_at": remind_at, "expires_at": expires_at}))
    u.emit(row["ticket_no"], SurveySent(
        survey_id=str(row["survey_id"]), url=domain.survey_url(policy.base_url, row["token"])))
    return row


async def _remind(u: Unit, policy: Policy, row: asyncpg.Record, now: datetime) -> asyncpg.Record:
    row = await store.update(u.conn, survey_id=row["survey_id"], **_planned(row, {"reminded_at": now}))
    u.emit(row["ticket_no"], SurveyReminder(
        survey_id=str(row["survey_id"]), url=domain.survey_url(policy.base_url, row["token"]),
        expires_at=row["expires_at"], language=row["language"]))
    return row


async def _expire(u: Unit, policy: Policy, row: asyncpg.Record, now: datetime) -> asyncpg.Record:
    row = await store.update(u.conn, survey_id=row["survey_id"], **_planned(row, {"status": "expired",
                                                                               "ended_at": now}))
    u.emit(row["ticket_no"], SurveyExpired(
        survey_id=str(row["survey_id"]), sent_at=row["sent_at"], reminded=row["reminded_at"] is not None))
    return row


_STEPS = {"send": _send, "remind": _remind, "expire": _expire}


async def run_due(rt: Runtime, policy: Policy, *, now: datetime, limit: int) -> int:
    """Do the work that is due at ``now`` on at most ``limit`` rows; returns how many were claimed."""
    done: list[tuple[str, asyncpg.Record]] = []
    async with rt.unit() as u:
        rows = await store.claim_due(u.conn, now=now, limit=limit)
        for row in rows:
            step = domain.next_step(row, now)
            if step is None:  # due_at was stale: re-plan it
                await store.update(u.conn, survey_id=row["survey_id"], **_planned(row, {}))
                continue
            done.append((step, await _STEPS[step](u, policy, row, now)))
        u.after_commit(lambda: _count_steps(done))
    return len(rows)


def _count_steps(done: list[tuple[str, asyncpg.Record]]) -> None:
    for step, row in done:
        if step == "send":
            metrics.SENT.labels(str(row["complaint"]).lower()).inc()
        elif step == "remind":
            metrics.REMINDERS.inc()
        else:
            metrics.EXPIRED.inc()


async def next_due(pool: asyncpg.Pool) -> datetime | None:
    async with pool.acquire() as conn:
        return await store.next_due(conn)


# ---- the customer's answer ----------------------------------------------------------------------


async def find(pool: asyncpg.Pool, *, token: str) -> asyncpg.Record | None:
    async with pool.acquire() as conn:
        return await store.by_token(conn, token=token)


async def for_ticket(pool: asyncpg.Pool, *, ticket_no: str) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        return await store.for_ticket(conn, ticket_no=ticket_no)


async def answer(
    rt: Runtime, policy: Policy, *, token: str, answer: SurveyAnswer, now: datetime,
) -> tuple[asyncpg.Record, Verdict]:
    """Record the one answer a survey takes; publish ``survey.completed`` (and ``survey.negative``)."""
    async with rt.unit() as u:
        row = await store.by_token(u.conn, token=token, for_update=True)
        try:
            domain.check_answerable(row, now)
        except Exception as exc:
            metrics.REJECTED.labels(type(exc).__name__.lower()).inc()
            raise
        verdict = domain.judge(answer)
        row = await store.update(u.conn, survey_id=row["survey_id"], **_planned(row, {
            "status": "answered", "answered_at": now, "resolved": answer.resolved, "speed": answer.speed,
            "attitude": answer.attitude, "overall": answer.overall, "comment": answer.comment}))
        repeat = await _repeat(u, policy, row, verdict, now)
        _publish_answer(u, row, answer, verdict, repeat)
    metrics.observe_answer(satisfied=verdict.satisfied, speed=answer.speed, attitude=answer.attitude,
                           overall=answer.overall, reasons=verdict.reasons)
    log.info("survey answered", extra={"ticket_no": row["ticket_no"], "survey_id": str(row["survey_id"]),
                                       "overall": answer.overall, "negative": verdict.negative})
    return row, verdict


async def _repeat(u: Unit, policy: Policy, row: asyncpg.Record, verdict: Verdict,
                  now: datetime) -> bool:
    key = row["customer_key"]
    if not key:
        return False
    if verdict.negative:
        await store.add_history(u.conn, customer_key=key, ticket_no=row["ticket_no"], kind="negative_survey", at=now)
    since = now - timedelta(days=policy.window_days)
    return domain.is_repeat(await store.history(u.conn, customer_key=key, since=since), now,
                            window_days=policy.window_days)


def _publish_answer(u: Unit, row: asyncpg.Record, answer: SurveyAnswer, verdict: Verdict,
                          repeat: bool) -> None:
    survey_id, ticket_no = str(row["survey_id"]), row["ticket_no"]
    u.emit(ticket_no, SurveyCompletedScored(
        survey_id=survey_id, resolved=answer.resolved, speed=answer.speed, attitude=answer.attitude,
        overall=answer.overall, comment=answer.comment, satisfied=verdict.satisfied, negative=verdict.negative,
        repeat_complainant=repeat, language=row["language"]))
    if verdict.negative:
        u.emit(ticket_no, SurveyNegativeFlagged(
            survey_id=survey_id, reason=verdict.reason_text(answer), reasons=list(verdict.reasons),
            resolved=answer.resolved, overall=answer.overall, comment=answer.comment, repeat_complainant=repeat,
            callback_within_s=domain.CALLBACK_WITHIN_S))


async def refresh_metrics(pool: asyncpg.Pool, *, now: datetime, window_days: int = 30) -> None:
    async with pool.acquire() as conn:
        sent, answered = await store.response_counts(conn, since=now - timedelta(days=window_days))
        counts = await store.status_counts(conn)
    metrics.set_rate(f"{window_days}d", sent, answered)
    metrics.set_statuses(counts)
