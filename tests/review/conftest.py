"""The review under test: routing, SLA, survey and review started in-process for this package (intake
runs for the session), review also on a real loopback port for the browser; helpers that drive
tickets through the services and that publish synthetic events straight to review's queue and the
event log (so no other service reacts to them)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import aio_pika
import pytest

from shared.envelope import CONTENT_TYPE, CloudEvent
from shared.settings import Settings
from shared.topology import EVENT_LOG
from tests.support import free_port, serve_http
from tests.conftest import Running, start_service


@pytest.fixture(scope="package")
async def routing(run_env: dict[str, str], drop_db_at_end: None) -> AsyncIterator[Running]:
    from services.routing.app import create_app

    async for running in start_service(create_app, Settings(HELPDESK_DB_POOL_MAX=3)):
        yield running


@pytest.fixture(scope="package")
async def sla(run_env: dict[str, str], drop_db_at_end: None) -> AsyncIterator[Running]:
    from services.sla.app import create_app

    async for running in start_service(create_app, Settings(HELPDESK_DB_POOL_MAX=3)):
        yield running


@pytest.fixture(scope="package")
async def survey(run_env: dict[str, str], drop_db_at_end: None) -> AsyncIterator[Running]:
    from services.survey.app import create_app
    from services.survey.config import SurveyConfig

    config = SurveyConfig(delay_s=0, complaint_delay_s=0, scheduler_poll_s=5)
    async for running in start_service(lambda s: create_app(s, config), Settings(HELPDESK_DB_POOL_MAX=3)):
        yield running


@dataclass
class ReviewService:
    running: Running
    base_url: str

    @property
    def client(self):
        return self.running.client

    @property
    def rt(self):
        return self.running.rt


@pytest.fixture(scope="package")
async def review(run_env: dict[str, str], drop_db_at_end: None) -> AsyncIterator[ReviewService]:
    from services.review.app import create_app
    from services.review.config import ReviewSettings

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    cfg = ReviewSettings(base_url=base_url, snapshot_enabled=False)  # the snapshot test drives it
    async for running in start_service(lambda s: create_app(s, cfg), Settings(HELPDESK_DB_POOL_MAX=4)):
        async with serve_http(running.app, port):
            yield ReviewService(running, base_url)


class Direct:
    """Publishes synthetic events as helpdesk.events would deliver them to review alone: to its queue
    ``review.events`` and to the event log, through the default exchange."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.user = unquote(urlsplit(url).username or "guest")  # a named publisher (the broker checks it)

    async def __aenter__(self) -> Direct:  # noqa: PYI034
        self.conn = await aio_pika.connect(self.url)
        self.channel = await self.conn.channel(publisher_confirms=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.conn.close()

    async def send(self, event: CloudEvent | bytes, *, log: bool = True) -> None:
        body = event if isinstance(event, bytes) else event.to_bytes()
        msg_id = None if isinstance(event, bytes) else event.id
        for queue in ("review.events", EVENT_LOG) if log else ("review.events",):
            await self.channel.default_exchange.publish(
                aio_pika.Message(body, message_id=msg_id, content_type=CONTENT_TYPE, user_id=self.user,
                                 delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=queue)


@pytest.fixture
async def direct(run_env: dict[str, str], review: ReviewService) -> AsyncIterator[Direct]:
    async with Direct(run_env["AMQP_URL"]) as d:
        yield d
