"""Survey wiring: the queue, its subscriber, the due-work scheduler and the HTTP routes.
Nothing connects until the lifespan runs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI

from services.survey import api, handlers, privacy, usecases
from services.survey.config import SurveyConfig
from services.survey.events import SurveyCompletedScored, SurveyNegativeFlagged
from services.survey.usecases import Policy
from services.survey.worker import DueWorker
from shared.consumer import subscribe
from shared.customer_api import customer_export
from shared.events import (
    SurveyCancelled, SurveyExpired, SurveyReminder, SurveySent,
)
from shared.dueloop import HOUR_S
from shared.runtime import Runtime
from shared.settings import Settings
from shared.topology import EVENTS, quorum_queue

SERVICE = "survey"
DESCRIPTION = (
    "Survey: after ticket.resolved (after a configurable delay) sends a satisfaction survey (survey.sent with "
    "the page's url), reminds once (survey.reminder), expires it (survey.expired), withdraws it on "
    "ticket.reopened (survey.cancelled); the answer (page form or JSON POST) publishes survey.completed and, "
    "when not resolved or overall <= 2, survey.negative for the manager's call-back. Keeps each customer's "
    "complaint history from ticket.created for the 30-day repeat-complainant flag."
)


PUBLISHED = (
    (SurveySent, "A survey link for the customer (notification delivers it)."),
    (SurveyReminder, "The one reminder for an unanswered survey (notification delivers it)."),
    (SurveyCompletedScored, "The customer's answer with its scores."),
    (SurveyNegativeFlagged, "Not resolved, or overall <= 2: the after-sales manager calls back within 1 h."),
    (SurveyExpired, "A survey that expired unanswered."),
    (SurveyCancelled, "A pending or unanswered survey withdrawn because its ticket was reopened."),
)


def build_runtime(settings: Settings | None = None, config: SurveyConfig | None = None) -> tuple[Runtime, Policy]:
    rt = Runtime(SERVICE, settings or Settings(), Path(__file__).parent / "migrations")
    cfg = config or SurveyConfig()
    policy = Policy(timing=cfg.timing(), base_url=rt.settings.survey_base_url, window_days=cfg.repeat_window_days)
    queue = quorum_queue("survey.tickets", routing_key="ticket.resolved", delivery_limit=rt.settings.delivery_limit)
    # nobody waits on this queue within the second (a survey goes out hours after the resolution): it
    # lingers as long as the queues that only record
    subscribe(rt, queue, EVENTS, handlers.build(rt, policy), batch=rt.batching(records=True))
    rt.bindings.append((queue, EVENTS, ["ticket.created", "ticket.reopened"]))
    erased = quorum_queue("survey.customers", routing_key="customer.erased", delivery_limit=rt.settings.delivery_limit)
    subscribe(rt, erased, EVENTS, handlers.build_customers(rt))
    rt.every(HOUR_S, lambda r: privacy.purge_expired(
        r, now=datetime.now(UTC), retention_days=r.settings.contact_retention_days),
        name="survey privacy purge")

    rt.add_loop(DueWorker(rt, policy, batch=cfg.scheduler_batch, poll_s=cfg.scheduler_poll_s))
    rt.document_publications(PUBLISHED)
    rt.metrics_hooks.append(
        lambda r: usecases.refresh_metrics(r.pool, now=datetime.now(UTC), window_days=30))
    return rt, policy


def create_app(settings: Settings | None = None, config: SurveyConfig | None = None) -> FastAPI:
    rt, policy = build_runtime(settings, config)
    app = rt.fastapi(title="helpdesk survey", description=DESCRIPTION)
    app.state.policy = policy
    app.include_router(api.pages)
    app.include_router(api.router)
    app.include_router(customer_export(privacy.export_customer))
    return app
