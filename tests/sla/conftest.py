"""The SLA service in-process (session), with a policy whose P1 and call-back targets are seconds long,
and helpers to publish the events other services would."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from shared.envelope import CONTENT_TYPE, new_event
from shared.settings import Settings
from tests.conftest import Running, start_service

FAST_POLICY = Path(__file__).parent / "policy_fast.toml"


@pytest.fixture(scope="package")
def fast_policy(run_env: dict[str, str]) -> AsyncIterator[None]:
    old = os.environ.get("SLA_POLICY_FILE")
    os.environ["SLA_POLICY_FILE"] = str(FAST_POLICY)
    yield
    if old is None:
        os.environ.pop("SLA_POLICY_FILE", None)
    else:
        os.environ["SLA_POLICY_FILE"] = old


@pytest.fixture(scope="package")
async def sla(run_env: dict[str, str], drop_db_at_end: None, fast_policy: None) -> AsyncIterator[Running]:
    from services.sla.app import create_app

    async for running in start_service(create_app, Settings(HELPDESK_DB_POOL_MAX=4)):
        yield running


async def emit(publisher: Any, *, service: str, type: str, ticket_no: str, seq: int = 1,
               time: datetime | None = None, **data: Any) -> str:
    """Publish an event as ``service`` would (CloudEvent on helpdesk.events); returns its id."""
    event = new_event(service=service, type=type, ticket_no=ticket_no, seq=seq, data=data, time=time)
    await publisher.publish("helpdesk.events", type, event.to_bytes(), content_type=CONTENT_TYPE,
                            message_id=event.id)
    return event.id


def routed(priority: str, category: str = "fault") -> dict[str, Any]:
    return {"category": category, "priority": priority, "department": "tech", "assignee": "eng-1", "rule": "test"}
