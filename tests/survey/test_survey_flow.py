"""Survey through the real broker and database: resolution -> survey.sent -> answer ->
survey.completed / survey.negative; delays, reminder, expiry, reopen, validation, metrics."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import orjson

from tests.survey.conftest import resolved_ticket, sent_survey, survey_row, time_travel, token_of

GOOD = {"resolved": True, "speed": 5, "attitude": 4, "overall": 4, "comment": "工程师很耐心"}


def page_client(survey) -> httpx.AsyncClient:  # noqa: ANN001
    """A client of the real loopback port, as a customer's phone would reach it."""
    return httpx.AsyncClient(base_url=survey.base_url, timeout=10, follow_redirects=False)


async def test_resolution_sends_a_survey_and_the_answer_completes_it(intake, survey, tap):
    no = await resolved_ticket(intake, tap)
    sent = await sent_survey(tap, no)
    assert sent.source == "/helpdesk/survey" and sent.data["seq"] == 1
    url = sent.data["url"]
    assert url.startswith(survey.base_url + "/s/") and len(token_of(url)) >= 22  # >= 128 bits
    async with page_client(survey) as web:
        r = await web.get(url)
        assert r.status_code == 200 and "text/html" in r.headers["content-type"]
        assert "服务满意度回访" in r.text and no in r.text and "<script" not in r.text
        assert "default-src 'none'" in r.headers["content-security-policy"] and r.headers["cache-control"] == "no-store"
        r = await web.post(url, json=GOOD)
        assert r.status_code == 201, r.text
        assert r.json() == {"survey_id": sent.data["survey_id"], "ticket_no": no, "status": "answered",
                            "satisfied": True, "negative": False}
        [done] = await tap.wait_events(lambda e: e.subject == no and e.type == "survey.completed")
        assert done.data.items() >= {"survey_id": sent.data["survey_id"], "resolved": True, "speed": 5,
                                  "attitude": 4, "overall": 4, "comment": "工程师很耐心", "satisfied": True,
                                  "repeat_complainant": False, "seq": 2}.items()
        again = await web.post(url, json=GOOD)
        assert again.status_code == 409 and again.json()["errors"][0]["field"] == "token"
        page = await web.get(url)
        assert page.status_code == 409 and "此问卷已提交" in page.text
    await asyncio.sleep(0.3)
    assert not tap.events(lambda e: e.subject == no and e.type == "survey.negative")


async def test_unresolved_or_low_overall_is_negative(intake, survey, tap):
    for answer, reasons in (({**GOOD, "resolved": False, "overall": 3}, ["unresolved"]),
                            ({**GOOD, "overall": 2, "comment": None}, ["dissatisfied"])):
        no = await resolved_ticket(intake, tap)
        sent = await sent_survey(tap, no)
        async with page_client(survey) as web:
            assert (await web.post(sent.data["url"], json=answer)).status_code == 201
        [neg] = await tap.wait_events(lambda e, no=no: e.subject == no and e.type == "survey.negative")
        assert neg.data["survey_id"] == sent.data["survey_id"] and neg.data["reasons"] == reasons
        assert neg.data["reason"] and neg.data["callback_within_s"] == 3600
        [done] = tap.events(lambda e, no=no: e.subject == no and e.type == "survey.completed")
        assert done.data["negative"] is True and done.data["satisfied"] is False


async def test_second_complaint_or_negative_within_30_days_flags_a_repeat_complainant(intake, survey, tap):
    customer = {"name": "王先生", "id": f"cust-{uuid.uuid4().hex[:10]}", "phone": f"137{uuid.uuid4().int % 10**8:08d}"}
    complaint = {"type": "attitude", "demand": "道歉"}
    first = await resolved_ticket(intake, tap, customer=customer, complaint=complaint)
    # a complaint's survey waits for the complaint delay: make it due now
    await time_travel(survey, str((await survey_row(survey, first))["survey_id"]), "send_at")
    sent = await sent_survey(tap, first)
    async with page_client(survey) as web:
        await web.post(sent.data["url"], json={**GOOD, "overall": 1})
    [neg] = await tap.wait_events(lambda e: e.subject == first and e.type == "survey.negative")
    assert neg.data["repeat_complainant"] is False  # one ticket: its complaint and its survey count once

    second = await resolved_ticket(intake, tap, customer=customer)
    sent = await sent_survey(tap, second)
    async with page_client(survey) as web:
        await web.post(sent.data["url"], json={**GOOD, "resolved": False})
    [neg] = await tap.wait_events(lambda e: e.subject == second and e.type == "survey.negative")
    assert neg.data["repeat_complainant"] is True
    [done] = tap.events(lambda e: e.subject == second and e.type == "survey.completed")
    assert done.data["repeat_complainant"] is True


async def test_complaint_waits_for_its_own_delay(intake, survey, tap):
    no = await resolved_ticket(intake, tap, complaint={"type": "efficiency"})
    row = await survey_row(survey, no)
    assert row["status"] == "scheduled" and row["complaint"] is True
    assert abs((row["send_at"] - row["resolved_at"]).total_seconds() - 3600) < 1e-3
    assert not tap.events(lambda e: e.subject == no and e.type == "survey.sent")
    async with page_client(survey) as web:  # the token is not live before it is sent
        assert (await web.get(f"/s/{row['token']}")).status_code == 404
    await time_travel(survey, str(row["survey_id"]), "send_at")
    sent = await sent_survey(tap, no)
    assert sent.data["survey_id"] == str(row["survey_id"])


async def test_one_reminder_then_expiry(intake, survey, tap):
    no = await resolved_ticket(intake, tap)
    sent = await sent_survey(tap, no)
    sid, url = sent.data["survey_id"], sent.data["url"]
    await time_travel(survey, sid, "remind_at")
    [reminder] = await tap.wait_events(lambda e: e.subject == no and e.type == "survey.reminder")
    assert reminder.data["url"] == url and reminder.data["survey_id"] == sid
    await time_travel(survey, sid, "expires_at")
    [expired] = await tap.wait_events(lambda e: e.subject == no and e.type == "survey.expired")
    assert expired.data["reminded"] is True
    assert len(tap.events(lambda e: e.subject == no and e.type == "survey.reminder")) == 1
    async with page_client(survey) as web:
        page = await web.get(url)
        assert page.status_code == 410 and "此链接已过期" in page.text
        r = await web.post(url, json=GOOD)
        assert r.status_code == 410 and r.json()["errors"][0] == {"field": "token", "problem": "this survey has expired"}


async def test_reopen_withdraws_the_survey_and_the_next_resolution_asks_again(intake, survey, tap):
    no = await resolved_ticket(intake, tap)
    first = await sent_survey(tap, no)
    r = await intake.client.post(f"/v1/tickets/{no}/reopen", json={"actor": "agent-7", "reason": "客户反馈仍无法开机"})
    assert r.status_code == 200, r.text
    [cancelled] = await tap.wait_events(lambda e: e.subject == no and e.type == "survey.cancelled")
    assert cancelled.data["survey_id"] == first.data["survey_id"] and cancelled.data["was_sent"] is True
    async with page_client(survey) as web:
        page = await web.get(first.data["url"])
        assert page.status_code == 410 and "此问卷已失效" in page.text
        assert (await web.post(first.data["url"], json=GOOD)).status_code == 410
    r = await intake.client.post(f"/v1/tickets/{no}/resolve",
                                 json={"actor": "agent-7", "outcome": "resolved", "solution": "更换电源模块 PWR-01"})
    assert r.status_code == 200
    second = await sent_survey(tap, no, count=2)
    assert second.data["survey_id"] != first.data["survey_id"] and second.data["url"] != first.data["url"]
    r = await survey.client.get("/v1/surveys", params={"ticket_no": no})
    assert [s["status"] for s in r.json()["surveys"]] == ["cancelled", "sent"]


async def test_bad_answers_name_the_field(intake, survey, tap):
    no = await resolved_ticket(intake, tap)
    url = (await sent_survey(tap, no)).data["url"]
    cases = [
        ({**GOOD, "speed": 6}, "speed"), ({**GOOD, "attitude": "3"}, "attitude"),
        ({**GOOD, "resolved": "yes"}, "resolved"), ({k: v for k, v in GOOD.items() if k != "overall"}, "overall"),
        ({**GOOD, "comment": "很" * 2001}, "comment"), ({**GOOD, "stars": 5}, "stars"),
    ]
    async with page_client(survey) as web:
        for body, field in cases:
            r = await web.post(url, json=body)
            assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == [field], (body, r.text)
        r = await web.post(url, content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body"
        r = await web.post(url, content=b"[1]", headers={"content-type": "application/json"})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body"
        r = await web.post(url, content=b"x", headers={"content-type": "text/plain"})
        assert r.status_code == 415 and r.json()["errors"][0]["field"] == "content-type"
        r = await web.post("/s/" + "A" * 32, json=GOOD)
        assert r.status_code == 404 and r.json()["errors"][0]["field"] == "token"
        assert (await web.get("/s/../etc")).status_code == 404
        assert (await web.post(url, json=GOOD)).status_code == 201  # still answerable after the bad tries


async def test_page_form_post_redirects_to_thanks_and_reshows_errors(intake, survey, tap):
    no = await resolved_ticket(intake, tap, customer={"name": "Tom", "language": "en"})
    url = (await sent_survey(tap, no)).data["url"]
    async with page_client(survey) as web:
        page = await web.get(url)
        assert page.status_code == 200 and 'lang="en"' in page.text and "Was your problem solved?" in page.text
        assert "服务满意度回访" in (await web.get(url, params={"lang": "zh-CN"})).text
        r = await web.post(url, data={"resolved": "yes", "speed": "4", "comment": "fast"})
        assert r.status_code == 422 and 'id="attitude-error"' in r.text and 'id="overall-error"' in r.text
        assert 'value="4" checked' in r.text and ">fast</textarea>" in r.text
        r = await web.post(url, data={"resolved": "no", "speed": "4", "attitude": "5", "overall": "2"})
        assert r.status_code == 303 and r.headers["location"].endswith("/thanks")
        thanks = await web.get(httpx.URL(url).join(r.headers["location"]))
        assert thanks.status_code == 200 and "Thank you" in thanks.text and 'id="callback-note"' in thanks.text
    [done] = await tap.wait_events(lambda e: e.subject == no and e.type == "survey.completed")
    assert done.data["resolved"] is False and done.data["overall"] == 2 and done.data["language"] == "en"


async def test_redelivered_resolution_makes_one_survey(intake, survey, tap, publisher):
    no = await resolved_ticket(intake, tap)
    await sent_survey(tap, no)
    [resolved] = tap.events(lambda e: e.subject == no and e.type == "ticket.resolved")
    raw = [m for m in tap.messages if m.message_id == resolved.id][0]
    await publisher.publish("helpdesk.events", "ticket.resolved", raw.body, message_id=resolved.id,
                            content_type="application/cloudevents+json")
    await asyncio.sleep(1.0)  # give the copy time to be consumed
    async with survey.rt.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM survey.surveys WHERE ticket_no = $1", no) == 1
    assert len(tap.events(lambda e: e.subject == no and e.type == "survey.sent")) == 1


async def test_malformed_event_is_dead_lettered_with_reason(survey, dlq_tap, publisher):
    body = orjson.dumps({"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/helpdesk/intake",
                         "type": "ticket.resolved", "time": "2026-11-23T08:00:00Z",
                         "data": {"ticket_no": "20261123999999", "seq": 9, "outcome": "maybe"}})
    await publisher.publish("helpdesk.events", "ticket.resolved", body)
    [msg] = await dlq_tap.wait_messages(lambda m: (m.headers or {}).get("x-helpdesk-queue") == "survey.tickets")
    assert "outcome" in msg.headers["x-helpdesk-reason"]


async def test_metrics_health_and_docs(intake, survey, tap):
    no = await resolved_ticket(intake, tap)
    url = (await sent_survey(tap, no)).data["url"]
    async with page_client(survey) as web:
        await web.post(url, json={**GOOD, "speed": 2, "overall": 5})
        text = (await web.get("/metrics")).text
        assert 'helpdesk_survey_responses_total{satisfied="true"}' in text
        assert 'helpdesk_survey_score_bucket{dimension="speed",le="2.0"}' in text
        assert 'helpdesk_survey_score_count{dimension="overall"}' in text
        rate = [line for line in text.splitlines() if line.startswith('helpdesk_survey_response_rate{window="30d"}')]
        assert rate and 0 < float(rate[0].split()[-1]) <= 1
        assert (await web.get("/healthz")).json()["checks"] == {"database": True, "broker": True}
        doc = (await web.get("/asyncapi.json")).json()
        assert any("survey.tickets" in name for name in doc["channels"])
        assert {"survey.sent", "survey.completed", "survey.negative", "survey.reminder"} <= set(doc["channels"])
        assert "/s/{token}" in (await web.get("/openapi.json")).json()["paths"]
        assert (await web.get("/v1/surveys", params={"ticket_no": no})).status_code == 401
