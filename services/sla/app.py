"""SLA wiring: policies, the event queue, the timer loop and HTTP routes. Nothing connects until the
lifespan runs; a bad policy file refuses to build the app."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.sla import api, handlers, policy, usecases
from services.sla.lifecycle import Reactor
from services.sla.worker import Timers
from shared.consumer import subscribe
from shared.runtime import Runtime
from shared.settings import Settings
from shared.topology import EVENTS, quorum_queue

SERVICE = "sla"
DESCRIPTION = (
    "SLA: times every promise (first response, resolution, the manager's call-back after a negative survey) "
    "on a business calendar from ticket.* and survey.negative events, and announces sla.started, sla.warning "
    "(80 %), sla.breached and sla.met. Timers fire within a second, once, with any number of replicas."
)


class SlaSettings(BaseSettings):
    """``SLA_POLICY_FILE`` (default: the shipped contract policy), timer batch and maximum sleep."""

    model_config = SettingsConfigDict(env_prefix="SLA_", extra="ignore", frozen=True)

    policy_file: str | None = None
    timer_batch: int = Field(500, ge=1, le=10_000)
    max_sleep_s: float = Field(30.0, gt=0)
    routing_grace_s: float = Field(30.0, ge=0)


def build_runtime(settings: Settings | None = None, sla: SlaSettings | None = None) -> Runtime:
    rt = Runtime(SERVICE, settings or Settings(), Path(__file__).parent / "migrations")
    sla = sla or SlaSettings()
    reactor = Reactor(policy.load(sla.policy_file, tz=rt.settings.tz),
                      routing_grace=timedelta(seconds=sla.routing_grace_s))
    queue = quorum_queue("sla.tickets", routing_key="ticket.*", delivery_limit=rt.settings.delivery_limit)
    on_event, prepare = handlers.build(rt, reactor)
    subscribe(rt, queue, EVENTS, on_event, batch=rt.batching(prepare=prepare))
    rt.bindings.append((queue, EVENTS, ["survey.negative"]))
    rt.metrics_hooks.append(lambda r: usecases.refresh_open_gauge(r.pool))
    rt.add_loop(Timers(rt, reactor=reactor, batch=sla.timer_batch, max_sleep_s=sla.max_sleep_s))
    return rt


def create_app(settings: Settings | None = None) -> FastAPI:
    rt = build_runtime(settings)
    app = rt.fastapi(title="helpdesk sla", description=DESCRIPTION)
    app.include_router(api.router)
    return app
