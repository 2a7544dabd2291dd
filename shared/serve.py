"""Run one service's app under uvicorn on its contract port: ``python -m services.<name>``."""

from __future__ import annotations

import os
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI

from shared import logs
from shared.settings import SERVICE_PORTS, Settings


def serve(service: str, create_app: Callable[[Settings], FastAPI]) -> None:
    settings = Settings()
    logs.configure(service, settings.log_level)
    port = int(os.environ.get(f"{service.upper()}_PORT", SERVICE_PORTS[service]))
    host = os.environ.get("HELPDESK_HOST", "127.0.0.1")
    uvicorn.run(create_app(settings), host=host, port=port, log_config=None, loop="uvloop",
                access_log=False, timeout_graceful_shutdown=10)
