"""The survey service, started in-process once per session and also served on a real loopback port
(the browser test opens the very ``url`` that ``survey.sent`` carries)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from shared.settings import Settings
from tests.support import free_port, serve_http
from tests.conftest import Running, start_service

# Complaints wait an hour before their survey goes out, so the delay can be seen (then time-travelled).
COMPLAINT_DELAY_S = 3600.0


@dataclass
class SurveyService:
    running: Running
    base_url: str

    @property
    def client(self):  # noqa: ANN201
        return self.running.client

    @property
    def rt(self):  # noqa: ANN201
        return self.running.rt


@pytest.fixture(scope="package")
async def survey(run_env: dict[str, str], drop_db_at_end: None) -> AsyncIterator[SurveyService]:
    from services.survey.app import create_app
    from services.survey.config import SurveyConfig

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    settings = Settings(SURVEY_BASE_URL=base_url)
    config = SurveyConfig(delay_s=0, complaint_delay_s=COMPLAINT_DELAY_S, scheduler_poll_s=5)
    async for running in start_service(lambda s: create_app(s, config), settings):
        async with serve_http(running.app, port):
            yield SurveyService(running, base_url)


def ticket_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "channel": "web",
        "external_id": f"web-{uuid.uuid4().hex}",
        # one customer per ticket unless a test says otherwise: customer_key follows the phone first
        "customer": {"name": "韩梅梅", "id": f"cust-{uuid.uuid4().hex[:12]}",
                     "phone": f"139{uuid.uuid4().int % 10**8:08d}"},
        "subject": "产品使用疑问",
        "description": "如何设置定时开机？",
        "urgency": "normal",
    }
    body.update(over)
    return body


async def resolved_ticket(intake: Running, tap: Any, **over: Any) -> str:
    """A real ticket through intake, resolved; returns its number once ``ticket.resolved`` is out."""
    r = await intake.client.post("/v1/tickets", json=ticket_body(**over))
    assert r.status_code == 201, r.text
    no = r.json()["ticket_no"]
    if over.get("complaint"):  # records (#14): a complaint is resolved with a responsibility and a remedy
        r = await intake.client.post(f"/v1/tickets/{no}/determine", json={
            "actor": "agent-7", "responsibility": "internal", "department": "客服部", "remedy": "apology"})
        assert r.status_code == 200, r.text
    r = await intake.client.post(f"/v1/tickets/{no}/resolve",
                                 json={"actor": "agent-7", "outcome": "resolved", "solution": "发送了视频教程并电话指导"})
    assert r.status_code == 200, r.text
    await tap.wait_events(lambda e: e.subject == no and e.type == "ticket.resolved")
    return no


async def sent_survey(tap: Any, no: str, count: int = 1) -> Any:
    events = await tap.wait_events(lambda e: e.subject == no and e.type == "survey.sent", count=count)
    return events[-1]


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


async def time_travel(survey, survey_id: str, *columns: str) -> None:  # noqa: ANN001
    """Move a survey's moments into the past (``now() - interval '1 second'``) and make it due, as
    if the configured time had passed; the trigger's NOTIFY wakes the scheduler."""
    sets = ", ".join(f"{c} = now() - interval '1 second'" for c in (*columns, "due_at"))
    async with survey.rt.pool.acquire() as conn:
        await conn.execute(f"UPDATE survey.surveys SET {sets} WHERE survey_id = $1", uuid.UUID(survey_id))


async def survey_row(survey, no: str):  # noqa: ANN001, ANN201
    """The ticket's (first) survey row, once the survey service has consumed the resolution."""
    async with survey.rt.pool.acquire() as conn:
        for _ in range(200):
            row = await conn.fetchrow("SELECT * FROM survey.surveys WHERE ticket_no = $1 ORDER BY created_at", no)
            if row:
                return row
            await asyncio.sleep(0.05)
    raise AssertionError(f"no survey for {no}")
