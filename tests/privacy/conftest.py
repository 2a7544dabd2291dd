"""The privacy tests run intake (session), notification against loopback peers and survey (both
package-scoped, borrowed from their own test packages), and serve notification on a real port so
intake's export can ask it over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support import free_port, serve_http
from tests.notification.conftest import notification, peers  # noqa: F401 - fixtures used here
from tests.survey.conftest import survey  # noqa: F401


@pytest.fixture(scope="package")
async def notification_url(notification) -> AsyncIterator[str]:  # noqa: F811
    port = free_port()
    async with serve_http(notification.app, port) as url:
        yield url
