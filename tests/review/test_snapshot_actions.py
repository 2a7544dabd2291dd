"""Publishing a review (the 02:00-on-the-1st snapshot and on request): frozen figures, review.published
with the link and headline figures, the manager's notification; improvement actions over HTTP with roles,
overdue flags and the following period's value against the target."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests import support
from tests.review.conftest import Direct
from tests.review.synthetic import TZ, Ticket, local, month_of_tickets
from tests.review.test_figures import caught_up

pytestmark = pytest.mark.asyncio(loop_scope="session")
SUP, ANALYST = {"X-API-Key": "sup-secret"}, {"X-API-Key": "analyst-secret"}


async def send_all(run_env, review, events) -> None:
    async with Direct(run_env["AMQP_URL"]) as direct:
        for e in events:
            await direct.send(e)
    await caught_up(review, events)


async def test_freezing_publishes_and_later_events_do_not_change_the_published_review(run_env, review):
    events = [e for t in month_of_tickets(2026, 8, key_prefix="snap") for e in t.events]
    await send_all(run_env, review, events)
    async with support.Tap(run_env["AMQP_URL"], keys=("review.published",)) as tap:
        r = await review.client.post("/v1/reviews/2026-08/snapshot", headers=SUP)
        assert r.status_code == 200 and r.json() == {"period": "2026-08", "frozen": True}
        [pub] = await tap.wait_events(lambda e: e.type == "review.published")
    assert pub.source == "/helpdesk/review" and pub.subject == "2026-08" and "ticket_no" not in pub.data
    assert pub.data["url"] == f"{review.base_url}/reviews/2026-08"
    assert pub.data["headline"]["tickets"]["value"] == 8 and "fcr_rate" in pub.data["headline"]
    late = Ticket(local(2026, 8, 30), channel="web").routed("fault", "P3")
    await send_all(run_env, review, late.events)
    body = (await review.client.get("/v1/reviews/2026-08")).json()
    assert body["source"] == "snapshot" and body["metrics"]["tickets"]["value"] == 8
    again = (await review.client.get("/v1/reviews/2026-08", params={"recompute": "true"})).json()
    assert {"metric": "tickets", "published": 8, "now": 9} in again["differences"]
    assert (await review.client.post("/v1/reviews/2026-08/snapshot", headers=SUP)).json()["frozen"] is False
    r = await review.client.post("/v1/reviews/2026-08/snapshot", headers=ANALYST)
    assert r.status_code == 403 and "supervisor" in r.json()["errors"][0]["problem"]
    r = await review.client.post("/v1/reviews/2099-01/snapshot", headers=SUP)
    assert r.status_code == 422


async def test_the_0200_job_freezes_last_month_once(run_env, review):
    loop = review.rt.snapshots
    await send_all(run_env, review, [e for t in month_of_tickets(2026, 7, key_prefix="job") for e in t.events])
    before = datetime(2026, 8, 1, 1, 59, tzinfo=TZ)
    async with review.rt.pool.acquire() as conn:
        frozen = await conn.fetchval("SELECT count(*) FROM review.snapshots WHERE period = '2026-07'")
    assert frozen == 0
    assert await loop.pass_once(now=before) is False  # before 02:00 June would be due: long past, left alone
    assert await loop.pass_once(now=datetime(2026, 8, 1, 2, 0, 1, tzinfo=TZ)) is True
    assert await loop.pass_once(now=datetime(2026, 8, 1, 2, 1, tzinfo=TZ)) is False
    body = (await review.client.get("/v1/reviews/2026-07")).json()
    assert body["source"] == "snapshot" and body["metrics"]["tickets"]["value"] == 8


async def test_improvement_actions(run_env, review):
    base = {"period": "2026-08", "finding": "一次解决率低：电源模块问题多次上门", "metric": "fcr_rate",
            "measure": "电源模块备件随车携带", "owner": "王工", "deadline": "2026-09-15", "target_value": 0.9}
    r = await review.client.post("/v1/reviews/actions", json=base, headers=ANALYST)
    assert r.status_code == 403
    r = await review.client.post("/v1/reviews/actions", json={**base, "metric": "nonsense"}, headers=SUP)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "metric"
    r = await review.client.post("/v1/reviews/actions", json={**base, "deadline": "someday"}, headers=SUP)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "deadline"
    r = await review.client.post("/v1/reviews/actions", json=base, headers=SUP)
    assert r.status_code == 201, r.text
    action = r.json()
    assert action["overdue"] is True and action["created_by"] == "sup" and action["status"] == "open"
    listed = (await review.client.get("/v1/reviews/actions", params={"period": "2026-08"}, headers=ANALYST)).json()
    assert action["id"] in {a["id"] for a in listed["actions"]}
    await send_all(run_env, review, [e for t in month_of_tickets(2026, 9, key_prefix="act") for e in t.events])
    sept = (await review.client.get("/v1/reviews/2026-09")).json()["metrics"]["fcr_rate"]["value"]
    body = (await review.client.get("/v1/reviews/2026-08")).json()  # frozen above; actions are live
    [shown] = [a for a in body["actions"] if a["id"] == action["id"]]
    assert shown["following_period"] == "2026-09" and shown["following_value"] == sept
    assert shown["target_value"] == 0.9 and shown["overdue"] is True
    page = (await review.client.get("/reviews/2026-08")).text
    row = page[page.index('<tr data-metric="fcr_rate">'):]
    row = row[:row.index("</tr>")]
    assert f'href="#action-{action["id"]}"' in row and "已逾期" in row  # beside its figure, flagged overdue
    assert f'id="action-{action["id"]}"' in page and "电源模块备件随车携带" in page
    r = await review.client.patch(f"/v1/reviews/actions/{action['id']}", json={"status": "done"}, headers=SUP)
    assert r.status_code == 200 and r.json()["status"] == "done" and r.json()["overdue"] is False
    r = await review.client.patch(f"/v1/reviews/actions/{action['id']}", json={"status": "maybe"}, headers=SUP)
    assert r.status_code == 422
    r = await review.client.patch("/v1/reviews/actions/00000000-0000-0000-0000-000000000000", json={"owner": "x"},
                                  headers=SUP)
    assert r.status_code == 404


async def test_a_published_month_is_the_next_reviews_previous_and_trend_point_exactly(run_env, review):
    """The statistics a snapshot keeps give the next review's previous figures and the trend's point
    exactly as computing them live did; a late event for the published month changes its recompute,
    never the next review's "previous" (what last month's review showed)."""
    events = [e for t in month_of_tickets(2026, 3, key_prefix="prevA") for e in t.events]
    events += [e for t in month_of_tickets(2026, 4, key_prefix="prevB") for e in t.events]
    await send_all(run_env, review, events)
    before = (await review.client.get("/v1/reviews/2026-04")).json()
    assert before["previous_source"] == "live" and before["metrics"]["tickets"]["previous"] == 8
    r = await review.client.post("/v1/reviews/2026-03/snapshot", headers=SUP)
    assert r.json()["frozen"] is True
    async with review.rt.pool.acquire() as conn:
        assert await conn.fetchval("SELECT stats IS NOT NULL FROM review.snapshots WHERE period = '2026-03'")
    after = (await review.client.get("/v1/reviews/2026-04")).json()
    assert after["previous_source"] == "snapshot"
    for key in ("metrics", "breakdowns", "trend", "complaint_analysis", "top_categories"):
        assert after[key] == before[key], key
    late = Ticket(local(2026, 3, 30), channel="web").routed("fault", "P3")
    await send_all(run_env, review, late.events)
    later = (await review.client.get("/v1/reviews/2026-04")).json()
    previous = lambda body: {k: m["previous"] for k, m in body["metrics"].items() if "previous" in m}
    assert previous(later) == previous(before) and later["trend"][:-1] == before["trend"][:-1]
    assert later["metrics"]["backlog_end"]["value"] == before["metrics"]["backlog_end"]["value"] + 1  # still open
    may = (await review.client.get("/v1/reviews/2026-03", params={"recompute": "true"})).json()
    assert {"metric": "tickets", "published": 8, "now": 9} in may["differences"]
