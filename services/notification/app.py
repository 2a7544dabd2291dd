"""Notification wiring: the events queue, the delivery worker, HTTP routes. Nothing connects until
the lifespan runs."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import FastAPI

from services.notification import api, channels, contacts, handlers, metrics, privacy, store
from services.notification.config import NotificationSettings, load_rules
from services.notification.templates import Templates
from services.notification.worker import Worker
from shared.consumer import subscribe
from shared.customer_api import customer_export
from shared.dueloop import HOUR_S
from shared.runtime import Runtime
from shared.settings import Settings
from shared.topology import EVENTS, quorum_queue

SERVICE = "notification"
DESCRIPTION = (
    "Notification: tells customers and staff, in their language, what the rules file says they should "
    "hear about ticket, SLA and survey events (SMS gateway, SMTP, signed webhooks, WeCom/DingTalk robots, "
    "log); durable deliveries with retries, quiet hours and rate limits; publishes notification.sent / "
    "notification.failed."
)
# Events whose facts later rules need (priority for urgency), even when no rule names them.
FACT_EVENTS = {"ticket.created", "ticket.routed", "ticket.reprioritized", "ticket.closed"}


def _api_key(settings: Settings, opts: NotificationSettings) -> str:
    return opts.api_key or settings.key_with_role("contacts")


def build_runtime(
    settings: Settings | None = None, *, options: NotificationSettings | None = None,
    intake_transport: httpx.AsyncBaseTransport | None = None,
) -> tuple[Runtime, Worker]:
    rt = Runtime(SERVICE, settings or Settings(), Path(__file__).parent / "migrations")
    opts = options or NotificationSettings()
    cfg = load_rules(opts.rules_file)
    templates = Templates(opts.templates_dir, default_language=cfg.defaults.language, tz=rt.settings.tz)
    worker = Worker(rt, cfg=cfg, templates=templates, opts=opts, tz=rt.settings.tz)

    keys = sorted(set(cfg.events()) | FACT_EVENTS)
    queue = quorum_queue("notification.events", routing_key=keys[0], delivery_limit=rt.settings.delivery_limit)
    on_event, prepare = handlers.build(rt, cfg, worker)
    subscribe(rt, queue, EVENTS, on_event, batch=rt.batching(prepare=prepare))
    rt.bindings.append((queue, EVENTS, keys[1:]))
    erased = quorum_queue("notification.customers", routing_key="customer.erased",
                          delivery_limit=rt.settings.delivery_limit)
    subscribe(rt, erased, EVENTS, handlers.build_customers(rt, worker))
    rt.every(HOUR_S, lambda r: privacy.purge_expired(
        r, now=worker.clock(), retention_days=r.settings.contact_retention_days),
        name="notification privacy purge")

    clients: list[httpx.AsyncClient | contacts.IntakeContacts] = []

    async def start(r: Runtime) -> None:
        size = opts.worker_concurrency
        client = httpx.AsyncClient(limits=httpx.Limits(max_connections=size, max_keepalive_connections=size))
        intake = contacts.IntakeContacts(opts.intake_url, _api_key(r.settings, opts), transport=intake_transport)
        clients[:] = [client, intake]
        worker.attach(channels=channels.build(cfg, client), intake=intake)

    async def stop(r: Runtime) -> None:  # after the worker (a loop) has stopped
        for c in clients:
            await (c.aclose() if isinstance(c, httpx.AsyncClient) else c.close())

    async def refresh(r: Runtime) -> None:
        async with r.pool.acquire() as conn:
            metrics.set_deliveries(await store.status_counts(conn), cfg.channels)

    rt.on_start.append(start)
    rt.add_loop(worker)
    rt.on_stop.append(stop)
    rt.metrics_hooks.append(refresh)
    metrics.init(cfg.channels)
    return rt, worker


def create_app(
    settings: Settings | None = None, *, options: NotificationSettings | None = None,
    intake_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    rt, worker = build_runtime(settings, options=options, intake_transport=intake_transport)
    app = rt.fastapi(title="helpdesk notification", description=DESCRIPTION)
    app.state.worker = worker
    app.include_router(api.router)
    app.include_router(customer_export(privacy.export_customer))
    return app
