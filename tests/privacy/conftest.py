"""The privacy tests run intake (session), notification against loopback peers and survey (both
package-scoped, borrowed from their own test packages), and serve notification on a real port so
intake's export can ask it over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import pytest
import uvicorn

from tests.notification.conftest import notification, peers  # noqa: F401 - fixtures used here
from tests.survey.conftest import survey  # noqa: F401


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="package")
async def notification_url(notification) -> AsyncIterator[str]:  # noqa: F811
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(notification.app, host="127.0.0.1", port=port, lifespan="off",
                                           log_config=None, access_log=False))
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await asyncio.wait_for(task, 10)
