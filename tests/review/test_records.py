"""Records' events through the running services fill the review's cause, sub-item, responsibility and
complaint department (consumed tolerantly: what is missing stays null)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests import support

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def fact(review, no: str, *, until) -> dict:
    for _ in range(600):
        async with review.rt.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM review.facts WHERE ticket_no = $1", no)
        if row and until(row):
            return dict(row)
        await asyncio.sleep(0.2)
    raise AssertionError(f"review's fact of {no} never got there: {row and dict(row)}")


async def test_diagnosis_and_determination_reach_the_fact_and_the_figures(run_env, intake, routing, review):
    c = intake.client
    async with support.Tap(run_env["AMQP_URL"]) as tap:
        r = await c.post("/v1/tickets", json={
            "channel": "phone", "external_id": f"rec-{uuid.uuid4().hex[:8]}", "customer": {"name": "李雷",
            "phone": f"136{uuid.uuid4().int % 10**8:08d}"}, "subject": "服务态度差", "description": "工程师态度恶劣",
            "complaint": {"type": "attitude", "demand": "道歉"}})
        assert r.status_code == 201, r.text
        no = r.json()["ticket_no"]
        await tap.wait_events(lambda e: e.subject == no and e.type == "ticket.routed", timeout=90)
        r = await c.post(f"/v1/tickets/{no}/diagnose", json={"actor": "eng-3", "result": "电源模块损坏",
                                                             "cause": "hardware", "sub_item": "power module",
                                                             "responsibility": "product_quality"})
        assert r.status_code == 200, r.text
        r = await c.post(f"/v1/tickets/{no}/determine", json={"actor": "sup-1", "responsibility": "internal",
                                                              "department": "售后二组", "remedy": "apology"})
        assert r.status_code == 200, r.text
    row = await fact(review, no, until=lambda r: r["responsibility"] == "internal")
    assert (row["cause"], row["sub_item"], row["complaint_department"], row["complaint_type"]) == \
        ("hardware", "power module", "售后二组", "attitude")
    assert row["complaint"] and row["customer_key"]  # intake's customer_key (privacy) arrived
    month = row["received_at"].astimezone(review.rt.settings.tz).strftime("%Y-%m")
    body = (await review.client.get(f"/v1/reviews/{month}")).json()
    by = {d: {x["key"]: x["complaints"] for x in rows} for d, rows in body["complaint_analysis"].items()}
    assert by["responsibility"].get("internal", 0) >= 1 and by["department"].get("售后二组", 0) >= 1
    top = {t["category"]: t for t in body["top_categories"]}
    if row["category"] in top:  # the five largest categories of the month (other packages add tickets too)
        assert "power module" in {s["sub_item"] for s in top[row["category"]]["sub_items"]}
