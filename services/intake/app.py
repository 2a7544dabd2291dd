"""Intake wiring: queues, subscribers and HTTP routes. Nothing connects until the lifespan runs."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.intake import api, handlers, progress, progress_api, records, records_api, store, usecases, worker
from shared import openapi
from shared.consumer import subscribe
from shared.events import (
    CustomerErased, TicketClosed, TicketCreated, TicketDetermined, TicketDiagnosed, TicketEscalationRequested,
    TicketProgressed, TicketReopened, TicketReprioritized, TicketResolved, TicketResponded, TicketResumed,
    TicketRevisited, TicketScheduled, TicketVerified, TicketWaiting,
)
from shared.events import TicketConfirmed, TicketCustomerReplied
from shared.runtime import Runtime
from shared.settings import Settings
from shared.topology import COMMANDS, EVENTS, INTAKE, quorum_queue

SERVICE = "intake"
DESCRIPTION = (
    "Intake: registers tickets from every channel (helpdesk.intake, POST /v1/tickets), numbers them, "
    "owns their lifecycle (helpdesk.commands, POST /v1/tickets/{no}/{action}) and keeps each ticket's "
    "timeline from helpdesk.events."
)


PUBLISHED = (
    (TicketCreated, "A ticket registered (contact details masked)."),
    (TicketResponded, "An agent answered the customer; first=true on the first response."),
    (TicketProgressed, "A progress note; visible_to_customer says whether the customer is told."),
    (TicketWaiting, "Waiting on the customer: SLA clocks pause."),
    (TicketResumed, "No longer waiting: SLA clocks run again."),
    (TicketEscalationRequested, "An agent asked for escalation; routing answers with ticket.escalated."),
    (TicketResolved, "Resolved, with outcome, solution and first_contact."),
    (TicketReopened, "Reopened after resolution."),
    (TicketClosed, "Closed (archived)."),
    (TicketReprioritized, "An agent changed the priority; routing re-routes, SLA recomputes."),
    (TicketCustomerReplied, "The customer added information on the progress page (masked); a waiting ticket resumes."),
    (TicketConfirmed, "The customer confirmed on the progress page that the problem is solved."),
    (CustomerErased, "A customer's contacts and name were erased (customer.erase): only the customer_key; "
                     "every service erases its own rows."),
    # records (#14)
    (TicketDiagnosed, "The diagnosis: result, cause (hardware|software|operation|quality|logistics|other), sub_item, "
                      + "responsibility."),
    (TicketScheduled, "An on-site visit booked: appointment_at, place (masked)."),
    (TicketVerified, "A complaint verified: method (call_recording|cctv|records|on_site|other), findings."),
    (TicketDetermined, "A complaint decided: responsibility, department, remedy, amount, customer_accepted."),
    (TicketRevisited, "The follow-up call after resolution: outcome, satisfied."),
)


FOREIGN_EVENTS = ["ticket.routed", "ticket.escalated", "sla.#", "notification.#", "survey.#"]


def build_runtime(settings: Settings | None = None) -> Runtime:
    rt = Runtime(SERVICE, settings or Settings(), Path(__file__).parent / "migrations")
    records.warranty_policy()  # a bad INTAKE_WARRANTY_FILE refuses the start, naming the key
    rt.on_emitted = store.record_events  # intake's own events join the timeline in their transaction
    limit = rt.settings.delivery_limit
    on_intake, prepare_intake, on_command, on_event = handlers.build(rt)
    subscribe(rt, quorum_queue("intake.tickets", routing_key="intake.*", delivery_limit=limit), INTAKE,
              on_intake, batch=rt.batching(linger=False, prepare=prepare_intake))
    commands = quorum_queue("intake.commands", routing_key="ticket.*", delivery_limit=limit)
    subscribe(rt, commands, COMMANDS, on_command)
    # The timeline takes what the other services say; intake's own events enter it in the transaction
    # that causes them, so binding "#" would only double the broker's work.
    timeline = quorum_queue("intake.timeline", routing_key="ticket.routed", delivery_limit=limit)
    subscribe(rt, timeline, EVENTS, on_event, batch=rt.batching(records=True))
    rt.bindings.append((timeline, EVENTS, FOREIGN_EVENTS))
    rt.document_publications(PUBLISHED)
    rt.metrics_hooks.append(lambda r: usecases.refresh_open_gauge(r.pool))
    # privacy: customer.erase over AMQP; the housekeeping and the retention purge run in worker.py
    rt.bindings.append((commands, COMMANDS, ["customer.erase"]))
    worker.register(rt)
    return rt


def create_app(settings: Settings | None = None, *, progress_opts: progress.ProgressSettings | None = None) -> FastAPI:
    rt = build_runtime(settings)
    app = rt.fastapi(title="helpdesk intake", description=DESCRIPTION)
    app.include_router(records_api.router)  # before api.router: its actions have their own bodies
    app.include_router(api.router)
    app.include_router(api.contacts_router)
    app.include_router(api.customers)
    openapi.extend(app, api.document)
    openapi.extend(app, api.document_pages)
    # The customer's progress page: a router of its own (no API key; the token is the credential), so an
    # ingress can expose /t/ alone.
    app.state.progress = progress_opts or progress.ProgressSettings()
    app.include_router(progress_api.router)
    return app
