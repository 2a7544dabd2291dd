"""Every service running at once (intake from the session, the others for this package), with a
client per role: the keys of tests/conftest.py, one per role."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest

from shared.settings import Settings
from tests.conftest import API_KEY, ROLE_KEYS, Running, start_service

KEYS = {**ROLE_KEYS, "admin": API_KEY}


@pytest.fixture(scope="package")
async def services(intake: Running) -> AsyncIterator[dict[str, Running]]:
    from services.notification.app import create_app as notification_app
    from services.review.app import create_app as review_app
    from services.review.config import ReviewSettings
    from services.notification.config import NotificationSettings
    from services.routing.app import create_app as routing_app
    from services.sla.app import create_app as sla_app
    from services.survey.app import create_app as survey_app

    def notification(settings: Settings):  # noqa: ANN202
        options = NotificationSettings(intake_url="http://intake")
        return notification_app(settings, options=options, intake_transport=httpx.ASGITransport(app=intake.app))

    def review(settings: Settings):  # noqa: ANN202
        return review_app(settings, ReviewSettings(snapshot_enabled=False))

    running = {"intake": intake}
    async with contextlib.AsyncExitStack() as stack:
        for name, factory in (("routing", routing_app), ("sla", sla_app), ("notification", notification),
                              ("survey", survey_app), ("review", review)):
            gen = start_service(factory, Settings())
            running[name] = await gen.__anext__()
            stack.push_async_callback(gen.aclose)
        yield running


def client(svc: Running, role: str | None) -> httpx.AsyncClient:
    """A client of ``svc`` presenting the key of ``role`` (``None``: no key at all)."""
    headers = {"X-API-Key": KEYS[role]} if role else {}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=svc.app), base_url="http://test", headers=headers)
