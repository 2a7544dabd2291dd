"""Unmasked contact reads: recorded (key, ticket, time) in intake's schema, counted, limited per key."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from prometheus_client import REGISTRY

from services.intake.app import create_app
from shared.settings import Settings
from tests.conftest import ROLE_KEYS, start_service
from tests.security.conftest import client


def _reads(caller: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("helpdesk_intake_contact_reads_total",
                                     {"caller": caller, "outcome": outcome}) or 0.0


async def _ticket(intake) -> str:  # noqa: ANN001
    r = await intake.client.post("/v1/tickets", json={
        "channel": "web", "external_id": f"c-{uuid.uuid4().hex}", "subject": "屏幕碎了",
        "customer": {"name": "赵六", "phone": "13912345678", "email": "zl@example.com"}})
    assert r.status_code == 201, r.text
    return r.json()["ticket_no"]


async def test_every_contact_read_is_recorded_and_counted(intake) -> None:  # noqa: ANN001
    no = await _ticket(intake)
    before = _reads("notify", "read")
    async with client(intake, "contacts") as c:
        for _ in range(2):
            r = await c.get(f"/v1/tickets/{no}/contact")
            assert r.status_code == 200 and r.json()["phone"] == "13912345678"
    async with client(intake, "agent") as c:
        assert (await c.get(f"/v1/tickets/{no}/contact")).status_code == 403
    async with intake.rt.pool.acquire() as conn:
        rows = await conn.fetch("SELECT caller, ticket_no, read_at FROM intake.contact_reads WHERE ticket_no = $1", no)
    assert [(r["caller"], r["ticket_no"]) for r in rows] == [("notify", no), ("notify", no)]
    assert all(r["read_at"] is not None for r in rows)
    assert _reads("notify", "read") == before + 2


@pytest.fixture
async def limited(run_env):  # noqa: ANN001, ANN201
    async for running in start_service(create_app, Settings(HELPDESK_CONTACT_READS_PER_MINUTE=3)):
        yield running


async def test_contact_reads_are_rate_limited_per_key(limited) -> None:  # noqa: ANN001
    no = await _ticket(limited)
    async with limited.rt.pool.acquire() as conn:  # a fresh window, not about to turn
        second = await conn.fetchval("SELECT extract(second FROM now())")
        if second > 55:
            await asyncio.sleep(61 - float(second))
        await conn.execute("DELETE FROM intake.contact_rate")
    statuses = []
    async with client(limited, "contacts") as c:
        for _ in range(5):
            statuses.append((await c.get(f"/v1/tickets/{no}/contact")).status_code)
    assert statuses == [200, 200, 200, 429, 429]
    async with client(limited, "admin") as c:  # another key has its own budget
        r = await c.get(f"/v1/tickets/{no}/contact")
        assert r.status_code == 200
    assert ROLE_KEYS["contacts"]
    async with limited.rt.pool.acquire() as conn:
        n = await conn.fetchval("SELECT count(*) FROM intake.contact_reads WHERE ticket_no = $1", no)
    assert n == 4  # refused reads disclosed nothing and are not recorded
