"""Every integration test runs against the real RabbitMQ and Postgres, in a vhost and a database
made for this run (``helpdesk_test_<random>``) and removed after it.

Intake runs for the whole session (every flow starts with a ticket); each other service's fixture
is package-scoped, so a service runs only while its own tests do and never reacts to another
package's tickets (routing re-prioritising the SLA tests' tickets, say)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI

from shared.broker_users import trust_mapping
from shared.settings import Settings
from shared.trust import DEFAULT_USERS
from tests import support

RUN_ID = uuid.uuid4().hex[:10]
API_KEY = "test-secret"
# One key per role besides the admin ``tester`` (tests/security exercises each).
ROLE_KEYS = {"channel": "gw-secret", "agent": "agent-secret", "supervisor": "sup-secret",
             "contacts": "notify-secret", "analyst": "analyst-secret"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that needs no broker or database (no ``run_env`` among its fixtures, directly or through
    another, and not marked ``integration``) is a unit test: ``make test-unit`` (``-m unit``) runs every
    one of them, wherever it lives."""
    for item in items:
        if "run_env" not in getattr(item, "fixturenames", ()) and item.get_closest_marker("integration") is None:
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def run_env() -> dict[str, str]:
    vhost = f"helpdesk_test_{RUN_ID}"
    support.create_vhost(vhost)
    env = {
        "AMQP_URL": f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/helpdesk_test_{RUN_ID}",
        "HELPDESK_API_KEYS": ",".join([f"tester:{API_KEY}:admin", "desk:desk-secret:agent+supervisor",
                                        "gw:gw-secret:channel", "agent:agent-secret:agent",
                                        "sup:sup-secret:supervisor", "notify:notify-secret:contacts",
                                        "analyst:analyst-secret:analyst"]),
        "HELPDESK_DELIVERY_LIMIT": "3",
        # the suite reads /openapi.json (off by default: tests/security checks that)
        "HELPDESK_DOCS": "true",
        # the broker users tests/security creates (t<run>-helpdesk-intake, t<run>-gw-wechat ...) are believed too
        "HELPDESK_BROKER_USERS": DEFAULT_USERS + "," + trust_mapping(f"t{RUN_ID}-"),
        # many services and replicas share one Postgres in the suite: keep each pool small
        "HELPDESK_DB_POOL_MAX": "5",
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield env
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    support.delete_vhost(vhost)


@pytest.fixture(scope="session")
async def drop_db_at_end(run_env: dict[str, str]) -> AsyncIterator[None]:
    yield
    await support.drop_database(f"helpdesk_test_{RUN_ID}")


@dataclass
class Running:
    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings

    @property
    def rt(self):  # noqa: ANN201
        return self.app.state.runtime


async def start_service(create_app, settings: Settings) -> AsyncIterator[Running]:  # noqa: ANN001
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test",
                                     headers={"X-API-Key": API_KEY}) as client:
            yield Running(app, client, settings)


@pytest.fixture(scope="session")
async def intake(run_env: dict[str, str], drop_db_at_end: None) -> AsyncIterator[Running]:
    from services.intake.app import create_app

    async for running in start_service(create_app, Settings()):
        yield running


@pytest.fixture
async def tap(run_env: dict[str, str]) -> AsyncIterator[support.Tap]:
    async with support.Tap(run_env["AMQP_URL"]) as t:
        yield t


@pytest.fixture
async def dlq_tap(run_env: dict[str, str]) -> AsyncIterator[support.Tap]:
    async with support.Tap(run_env["AMQP_URL"], exchange="helpdesk.dlx") as t:
        yield t


@pytest.fixture
async def publisher(run_env: dict[str, str]) -> AsyncIterator[support.Publisher]:
    async with support.Publisher(run_env["AMQP_URL"]) as p:
        yield p
