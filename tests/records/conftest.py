"""Records under test: intake (session), sla with a records policy (seconds-long revisit and a
seconds-long logistics step) and routing with one extra warranty rule — all on the real broker and
database of the run."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from shared.settings import Settings
from tests.conftest import Running, start_service

HERE = Path(__file__).parent
WARRANTY_RULE = '''
[[rules]]
name = "warranty-return"
category = "return"
entitlements = ["return"]
'''


@pytest.fixture(scope="package")
def records_env(run_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[None]:
    rules = tmp_path_factory.mktemp("records") / "rules.toml"
    shipped = (HERE.parent.parent / "services/routing/rules.toml").read_text(encoding="utf-8")
    marker = "# ---------------------------------------------------------------- priority"
    rules.write_text(shipped.replace(marker, WARRANTY_RULE + "\n" + marker, 1), encoding="utf-8")
    env = {"SLA_POLICY_FILE": str(HERE / "policy_records.toml"), "ROUTING_RULES_FILE": str(rules)}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="package")
async def sla(records_env: None, drop_db_at_end: None) -> AsyncIterator[Running]:
    from services.sla.app import create_app

    async for running in start_service(create_app, Settings(HELPDESK_DB_POOL_MAX=4)):
        yield running


@pytest.fixture(scope="package")
async def routing(records_env: None, drop_db_at_end: None) -> AsyncIterator[Running]:
    from services.routing.app import create_app

    async for running in start_service(create_app, Settings(HELPDESK_DB_POOL_MAX=4)):
        yield running


@pytest.fixture(scope="package")
async def stack(intake: Running, routing: Running, sla: Running) -> dict[str, Running]:
    return {"intake": intake, "routing": routing, "sla": sla}


def phone() -> str:
    return "139" + str(uuid.uuid4().int)[:8]


def body(**over: Any) -> dict[str, Any]:
    b: dict[str, Any] = {"channel": "phone", "external_id": f"rec-{uuid.uuid4().hex}",
                         "customer": {"name": "李雷", "phone": phone()}, "subject": "请问如何设置"}
    b.update(over)
    return b


async def create(intake: Running, **over: Any) -> str:
    r = await intake.client.post("/v1/tickets", json=body(**over))
    assert r.status_code == 201, r.text
    return r.json()["ticket_no"]


async def cmd(intake: Running, no: str, action: str, expect: int = 200, **fields: Any) -> dict[str, Any]:
    fields.setdefault("actor", "agent-7")
    r = await intake.client.post(f"/v1/tickets/{no}/{action}", json=fields)
    assert r.status_code == expect, (action, r.status_code, r.text)
    return r.json()


def of(no: str, type_: str, **match: Any):
    return lambda e: e.subject == no and e.type == type_ and all(e.data.get(k) == v for k, v in match.items())


async def view_when(intake: Running, no: str, pred, timeout: float = 10) -> dict[str, Any]:
    """The ticket view once ``pred(view)`` holds (the timeline follows the other services' events)."""
    async def poll() -> dict[str, Any]:
        while True:
            view = (await intake.client.get(f"/v1/tickets/{no}")).json()
            if pred(view):
                return view
            await asyncio.sleep(0.05)

    return await asyncio.wait_for(poll(), timeout)
