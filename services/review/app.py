"""Review wiring: the event queue (every event), the snapshot loop and the HTTP routes.
Nothing connects until the lifespan runs; a bad calendars file refuses to build the app."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from services.review import api, handlers, page, usecases
from services.review.config import ReviewSettings, business_time, calendars_path, load_calendars
from services.review.worker import SnapshotLoop
from shared.consumer import subscribe
from shared.events import ReviewPublished
from shared.runtime import Runtime
from shared.settings import Settings
from shared.topology import EVENTS, quorum_queue

SERVICE = "review"
DESCRIPTION = (
    "Review: the monthly 复盘. Folds every event on helpdesk.events into one fact row per ticket (idempotent by "
    "event id and per-ticket seq, right in any arrival order) and answers the period's figures exactly — "
    "`GET /v1/reviews/{period}` as JSON, CSV or XLSX, `GET /reviews/{period}` as a page — with the previous "
    "period, changes, a 12-month trend, breakdowns and improvement actions. At 02:00 on the 1st the previous "
    "month is frozen and announced as review.published.\n\n"
    "**The event log.** Every service declares the RabbitMQ stream `helpdesk.events.log` (x-queue-type stream, "
    "bound to helpdesk.events with `#`, retention HELPDESK_EVENT_LOG_MAX_AGE, default 2 years, and "
    "HELPDESK_EVENT_LOG_MAX_BYTES). A subscriber that joins late replays history from it: open a channel with a "
    "prefetch (basic.qos), basic.consume the queue `helpdesk.events.log` with the argument "
    "`x-stream-offset` = `first` (or an offset number, or a timestamp) and manual acks, read the same CloudEvents "
    "as on helpdesk.events (de-duplicate by id and per-ticket seq), then bind its own queue for live events; "
    "reading never removes anything. Messages of type `review.replay_marker` are position markers a rebuild "
    "leaves, not events: skip them. `python -m services.review rebuild` does exactly this to rebuild the facts."
)
PUBLISHED = ((ReviewPublished, "A period's review frozen and published: period, link, headline figures."),)


def build_runtime(settings: Settings | None = None, cfg: ReviewSettings | None = None) -> Runtime:
    rt = Runtime(SERVICE, settings or Settings(), Path(__file__).parent / "migrations")
    cfg = cfg or ReviewSettings()
    business = business_time(load_calendars(calendars_path(cfg), rt.settings.tz))
    rt.review = cfg  # type: ignore[attr-defined]
    rt.business = business  # type: ignore[attr-defined]
    queue = quorum_queue("review.events", routing_key="#", delivery_limit=rt.settings.delivery_limit)
    subscribe(rt, queue, EVENTS, handlers.build(rt, business), batch=rt.batching(records=True))

    async def start_snapshots(r: Runtime) -> None:
        loop = SnapshotLoop(r, cfg)
        r.snapshots = loop  # type: ignore[attr-defined]
        if cfg.snapshot_enabled:
            loop.start()
        r.on_stop.append(lambda _: loop.stop())

    rt.on_start.append(start_snapshots)
    rt.document_publications(PUBLISHED)
    rt.metrics_hooks.append(lambda r: usecases.refresh_metrics(r.pool))
    return rt


def create_app(settings: Settings | None = None, cfg: ReviewSettings | None = None) -> FastAPI:
    rt = build_runtime(settings, cfg)
    app = rt.fastapi(title="helpdesk review", description=DESCRIPTION)
    app.include_router(api.router)
    app.include_router(page.router)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    return app
