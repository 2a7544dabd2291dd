"""Routing's use cases: ticket assignment, escalation, the roster."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from services.routing.metrics import Pending
from shared.runtime import Runtime
from shared.unit import Unit


@contextlib.asynccontextmanager
async def metered(rt: Runtime, **unit: Any) -> AsyncIterator[tuple[Unit, Pending]]:
    """``rt.unit(**unit)`` with the metric increments of its transaction, applied once it committed
    (a rolled back, retried message never counts twice)."""
    pending = Pending()
    async with rt.unit(**unit) as u:
        u.after_commit(pending.apply)
        yield u, pending
