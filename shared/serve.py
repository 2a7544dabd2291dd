"""Run one service's app under uvicorn on its contract port: ``python -m services.<name>``."""

from __future__ import annotations

import os
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI

from shared import gcpolicy, logs
from shared.settings import SERVICE_PORTS, Settings


def serve(service: str, create_app: Callable[[Settings], FastAPI]) -> None:
    settings = Settings()
    logs.configure(service, settings.log_level)
    if profile_dir := os.environ.get("HELPDESK_PROFILE_DIR"):  # development: SIGUSR2 clears, SIGUSR1 saves
        import signal

        import yappi

        yappi.set_clock_type("cpu")
        yappi.start(builtins=True)
        signal.signal(signal.SIGUSR2, lambda *_: yappi.clear_stats())
        signal.signal(signal.SIGUSR1, lambda *_: yappi.get_func_stats().save(f"{profile_dir}/{service}.pstat",
                                                                            type="pstat"))
    gcpolicy.on_start(settings.gc_threshold)  # freeze what the start made, collect young objects less often
    port = int(os.environ.get(f"{service.upper()}_PORT", SERVICE_PORTS[service]))
    host = os.environ.get("HELPDESK_HOST", "127.0.0.1")
    uvicorn.run(create_app(settings), host=host, port=port, log_config=None, loop="uvloop",
                access_log=False, timeout_graceful_shutdown=10)
