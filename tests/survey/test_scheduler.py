"""The due-work scheduler on the real database: competing claimers do each row once; the worker
sleeps until the next due row and wakes for it by itself."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta

from services.survey import store, usecases
from services.survey.domain import new_token


async def _schedule(survey, send_at: datetime, n: int) -> list[str]:  # noqa: ANN001
    base = random.randrange(10**5, 9 * 10**5)
    numbers = [f"20990101{base + i:06d}" for i in range(n)]
    async with survey.rt.pool.acquire() as conn, conn.transaction():
        for no in numbers:
            await store.insert_survey(conn, ticket_no=no, token=new_token(), language="zh-CN", customer_key=None,
                                      complaint=False, resolution_event=str(uuid.uuid4()), resolution_seq=2,
                                      resolved_at=send_at,
                                      send_at=send_at)
    return numbers


async def test_competing_claimers_send_each_due_survey_once(survey, tap):
    policy = survey.running.app.state.policy
    numbers = set(await _schedule(survey, datetime.now(UTC) - timedelta(seconds=5), 30))
    # six extra claimers race the service's own worker (woken by the insert's NOTIFY)
    claimed = await asyncio.gather(*(usecases.run_due(survey.rt, policy, now=datetime.now(UTC), limit=4)
                                     for _ in range(6)))
    assert all(0 <= c <= 4 for c in claimed)
    await tap.wait_events(lambda e: e.type == "survey.sent" and e.subject in numbers, count=30)
    await asyncio.sleep(0.5)  # room for a duplicate to show up
    sent = tap.events(lambda e: e.type == "survey.sent" and e.subject in numbers)
    assert sorted(e.subject for e in sent) == sorted(numbers)
    async with survey.rt.pool.acquire() as conn:
        statuses = await conn.fetch("SELECT DISTINCT status FROM survey.surveys WHERE ticket_no = ANY($1)",
                                    list(numbers))
    assert [r["status"] for r in statuses] == ["sent"]


async def test_worker_wakes_for_a_row_due_in_the_near_future(survey, tap):
    [no] = await _schedule(survey, datetime.now(UTC) + timedelta(seconds=2.5), 1)
    async with survey.rt.pool.acquire() as conn:
        assert await conn.fetchval("SELECT status FROM survey.surveys WHERE ticket_no = $1", no) == "scheduled"
    [sent] = await tap.wait_events(lambda e: e.type == "survey.sent" and e.subject == no, timeout=15)
    assert sent.data["url"].startswith(survey.base_url)
