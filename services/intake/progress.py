"""The customer's progress page, use cases: issue the link, show the page, and what the customer does
there — add information (``ticket.customer_replied``; a waiting ticket resumes), ask for a call back
(``ticket.escalation_requested`` with reason ``customer``), confirm the outcome (``ticket.confirmed``,
or the ticket reopened with the customer's words). Each write is one transaction with its events.

The link is a credential, so it never travels in ``ticket.created``: notification receives
``progress_url`` with the customer's contact (``GET /v1/tickets/{no}/contact``), just before it sends
the acknowledgement.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.intake import domain, metrics, store
from services.intake import progress_domain as pd
from services.intake import progress_store as links
from shared.errors import NotFound
from shared.events import TicketConfirmed, TicketCustomerReplied, TicketEscalationRequested
from shared.masking import mask_text
from shared.messages import ReopenTicket, ResumeTicket
from shared.runtime import Runtime
from shared.unit import Unit

SERVICE = "intake"
CUSTOMER = "customer"
log = logging.getLogger(__name__)
DEV_SECRET = "dev-only-progress-secret-change-me"


class ProgressSettings(BaseSettings):
    """``INTAKE_PROGRESS_*``: the link's secret and public base, its life after closure, write limits."""

    model_config = SettingsConfigDict(env_prefix="INTAKE_PROGRESS_", extra="ignore", frozen=True,
                                      populate_by_name=True)

    secret: str = DEV_SECRET  # HMAC key of the tokens: set it in production (the same on every replica)
    base_url: str = "http://127.0.0.1:8001"  # where customers reach the public router (/t/{token})
    ttl_days: float = Field(30.0, gt=0)  # the link answers 410 this long after the ticket closed
    writes_per_window: int = Field(10, ge=1)  # a link's writes (reply, call back, confirm) per window
    window_s: float = Field(3600.0, gt=0)
    callback_every_s: float = Field(3600.0, ge=0)  # one call-back request per this long
    env: str = Field("development", alias="HELPDESK_ENV")  # production refuses the dev secret

    @model_validator(mode="after")
    def _real_secret_in_production(self) -> ProgressSettings:
        if self.env == "production" and (self.secret == DEV_SECRET or len(self.secret) < 32):
            raise ValueError("INTAKE_PROGRESS_SECRET: set a random secret of at least 32 characters in production "
                             "(the progress links are HMACs of it)")
        return self


def url_for(opts: ProgressSettings, token: str) -> str:
    return f"{opts.base_url.rstrip('/')}/t/{token}"


async def issue_links(pool: asyncpg.Pool, opts: ProgressSettings, *, ticket_nos: list[str]) -> dict[str, str]:
    """The tickets' progress URLs (each made on first use: the acknowledgement's contact lookup), in one
    statement however many (a batch of deliveries' contacts)."""
    if not ticket_nos:
        return {}
    wanted = []
    for no in ticket_nos:
        fresh = pd.new_salt()
        wanted.append((no, fresh, pd.token_hash(pd.make_token(opts.secret, fresh, no))))
    async with pool.acquire() as conn:
        salts = await links.add_links(conn, wanted)
    return {no: url_for(opts, pd.make_token(opts.secret, salts[no], no)) for no in ticket_nos}


async def issue_link(pool: asyncpg.Pool, opts: ProgressSettings, *, ticket_no: str) -> str:
    """The ticket's progress URL (``issue_links`` for one)."""
    return (await issue_links(pool, opts, ticket_nos=[ticket_no]))[ticket_no]


async def _ticket_no(conn: asyncpg.Connection, token: str) -> str | None:
    if not pd.plausible_token(token):
        return None
    return await links.ticket_of(conn, token_hash=pd.token_hash(token))


@dataclass(frozen=True)
class PageView:
    state: str  # open | expired | unknown
    ticket: dict[str, Any] | None = None
    promise: pd.Promise | None = None
    timeline: tuple[pd.Item, ...] = ()
    can_confirm: bool = False
    language: str | None = None


def _events(rows: list[asyncpg.Record]) -> list[dict[str, Any]]:
    return [{"type": r["type"], "time": r["time"], "data": orjson.loads(r["data"])} for r in rows]


async def page(pool: asyncpg.Pool, opts: ProgressSettings, *, token: str, now: datetime) -> PageView:
    """What the page shows for ``token`` (or why it does not open)."""
    async with pool.acquire() as conn:
        no = await _ticket_no(conn, token)
        t = await store.get(conn, ticket_no=no) if no else None
        state = pd.link_state(t, now=now, ttl=timedelta(days=opts.ttl_days))
        if state != "open":
            return PageView(state, language=t["customer_language"] if t else None)
        link = await links.link(conn, ticket_no=no)
        events = _events(await store.timeline(conn, ticket_no=no))
    ticket = {k: t[k] for k in ("ticket_no", "status", "received_at", "resolved_at", "closed_at", "outcome")}
    confirmable = t["status"] == "resolved" and link["confirmed_resolved_at"] != t["resolved_at"]
    return PageView("open", ticket, pd.promise(t["status"], events, domain.sla_state(events), now=now),
                    tuple(pd.visible_timeline(events)), confirmable, t["customer_language"])


async def _locked(conn: asyncpg.Connection, opts: ProgressSettings, token: str, now: datetime):
    """The token's ticket and link, locked, after the link's write budget is charged."""
    no = await _ticket_no(conn, token)
    t = await store.get(conn, ticket_no=no, for_update=True) if no else None
    state = pd.link_state(t, now=now, ttl=timedelta(days=opts.ttl_days))
    if state == "unknown":
        raise NotFound("token", "no such progress link")
    if state == "expired":
        raise Gone("token", "this progress link has expired")
    link = await links.link(conn, ticket_no=no, for_update=True)
    window = pd.spend(pd.Window(link["window_start"], link["writes"]), now=now, limit=opts.writes_per_window,
                      span=timedelta(seconds=opts.window_s))
    await links.save_window(conn, ticket_no=no, start=window.start, writes=window.count)
    return t, link


class Gone(NotFound):
    status = 410


async def _apply(u: Unit, t: asyncpg.Record, action: str, cmd: Any, now: datetime) -> None:
    """A lifecycle transition on the customer's behalf (resume, reopen), through intake's own rules."""
    status = domain.next_status(t["status"], action)
    changes, event = domain.decide(action, t, cmd, now)
    await store.update(u.conn, ticket_no=t["ticket_no"], status=status, **changes)
    u.emit(t["ticket_no"], event)


async def add_information(rt: Runtime, opts: ProgressSettings, *, token: str, text: Any) -> str:
    """The customer's words join the timeline; a ticket waiting on the customer resumes."""
    words = pd.clean_text("text", text, required=True)
    now = datetime.now(UTC)
    async with rt.unit() as u:
        t, _ = await _locked(u.conn, opts, token, now)
        pd.can_reply(t["status"])
        u.emit(t["ticket_no"], TicketCustomerReplied(at=now, text=mask_text(words or "")))
        if t["status"] == "waiting":
            await _apply(u, t, "resume", ResumeTicket(ticket_no=t["ticket_no"], actor=CUSTOMER), now)
    _count("customer_reply", t["ticket_no"])
    return t["ticket_no"]


async def request_callback(rt: Runtime, opts: ProgressSettings, *, token: str) -> str:
    """``ticket.escalation_requested`` (reason ``customer``): routing puts it one level up the chain."""
    now = datetime.now(UTC)
    async with rt.unit() as u:
        t, link = await _locked(u.conn, opts, token, now)
        pd.can_reply(t["status"])
        pd.callback_allowed(link["last_callback_at"], now=now, every=timedelta(seconds=opts.callback_every_s))
        await links.mark_callback(u.conn, ticket_no=t["ticket_no"], at=now)
        await store.update(u.conn, ticket_no=t["ticket_no"], escalated=True)
        u.emit(t["ticket_no"], TicketEscalationRequested(actor=CUSTOMER, at=now, reason="customer"))
    _count("customer_callback", t["ticket_no"])
    return t["ticket_no"]


async def confirm(rt: Runtime, opts: ProgressSettings, *, token: str, solved: Any, words: Any) -> bool:
    """Yes: ``ticket.confirmed``. No: the ticket is reopened with the customer's words. Once per resolution."""
    is_solved = pd.parse_solved(solved)
    text = pd.clean_text("text", words, required=False)
    now = datetime.now(UTC)
    async with rt.unit() as u:
        t, link = await _locked(u.conn, opts, token, now)
        pd.can_confirm(t["status"], t["resolved_at"], link["confirmed_resolved_at"])
        if is_solved:
            await links.mark_confirmed(u.conn, ticket_no=t["ticket_no"], resolved_at=t["resolved_at"])
            u.emit(t["ticket_no"], TicketConfirmed(at=now))
        else:
            reason = mask_text(text) if text else "客户反馈问题未解决 / the customer says the problem is not solved"
            await _apply(u, t, "reopen", ReopenTicket(ticket_no=t["ticket_no"], actor=CUSTOMER, reason=reason),
                         now)
    _count("customer_confirm" if is_solved else "customer_not_solved", t["ticket_no"])
    return is_solved


def _count(action: str, ticket_no: str) -> None:
    metrics.COMMANDS.labels(action, "applied").inc()
    log.info("customer action", extra={"ticket_no": ticket_no, "action": action})
