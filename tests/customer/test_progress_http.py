"""The progress page over HTTP against the real intake (broker and database): the link issued with the
contact, its headers, and every refusal the issue names (404, 410, 422 naming the field, 409, 429)."""

from __future__ import annotations

from urllib.parse import urlsplit

from tests.customer.conftest import command, new_ticket, until

HEADERS = {"cache-control": "no-store", "referrer-policy": "no-referrer", "x-content-type-options": "nosniff"}


async def _path(intake, no: str) -> str:  # noqa: ANN001
    r = await intake.client.get(f"/v1/tickets/{no}/contact")
    assert r.status_code == 200, r.text
    return urlsplit(r.json()["progress_url"]).path


async def test_link_comes_with_the_contact_not_in_the_event(public, tap):
    intake = public.intake
    no = await new_ticket(intake)
    path = await _path(intake, no)
    assert path.startswith("/t/") and len(path.rsplit("/", 1)[1]) == 43  # 256-bit token, base64url
    assert path == await _path(intake, no)  # the same link each time it is asked for
    [created] = await tap.wait_events(lambda e: e.subject == no and e.type == "ticket.created")
    assert path.rsplit("/", 1)[1] not in created.to_bytes().decode()
    async with intake.rt.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM intake.progress_links WHERE ticket_no = $1", no)
    assert path.rsplit("/", 1)[1].encode() not in bytes(row["token_hash"]) + bytes(row["salt"])
    page = await intake.client.get(path, headers={"X-API-Key": ""})
    assert page.status_code == 200 and no in page.text
    assert {k: page.headers[k] for k in HEADERS} == HEADERS
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp and "<script" not in page.text


async def test_bad_token_404_and_expired_410(public):
    intake = public.intake
    for bad in ("x" * 43, "short", "A" * 43):
        r = await intake.client.get(f"/t/{bad}")
        assert r.status_code == 404 and 'data-state="unknown"' in r.text
    no = await new_ticket(intake)
    path = await _path(intake, no)
    await command(intake, no, "close", reason="客户确认无需处理")
    assert (await intake.client.get(path)).status_code == 200  # closed, not yet expired
    async with intake.rt.pool.acquire() as conn:
        await conn.execute("UPDATE intake.tickets SET closed_at = now() - interval '31 days' WHERE ticket_no = $1", no)
    r = await intake.client.get(path)
    assert r.status_code == 410 and 'data-state="expired"' in r.text
    r = await intake.client.post(f"{path}/reply", json={"text": "还在吗"})
    assert r.status_code == 410


async def test_reply_422_names_the_field_and_a_waiting_ticket_resumes(public, tap):
    intake = public.intake
    no = await new_ticket(intake)
    path = await _path(intake, no)
    for body in ({"text": "   "}, {}, {"text": "长" * 2001}):
        r = await intake.client.post(f"{path}/reply", json=body)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "text", r.text
    form = await intake.client.post(f"{path}/reply", data={"text": ""})
    assert form.status_code == 422 and 'id="text-error"' in form.text
    await command(intake, no, "wait", reason="请提供设备背面的照片")
    r = await intake.client.post(f"{path}/reply", json={"text": "照片已拍好，联系电话 13812345678"})
    assert r.status_code == 201, r.text
    replied, resumed = await tap.wait_events(
        lambda e: e.subject == no and e.type in ("ticket.customer_replied", "ticket.resumed"), count=2)
    assert replied.type == "ticket.customer_replied" and "138****5678" in replied.data["text"]
    assert resumed.type == "ticket.resumed" and resumed.data["seq"] == replied.data["seq"] + 1
    view = (await intake.client.get(f"/v1/tickets/{no}")).json()
    assert view["status"] == "in_progress"
    page = await intake.client.get(path)
    assert "138****5678" in page.text and "13812345678" not in page.text


async def test_confirm_yes_once_no_reopens_and_callback_is_rate_limited(public, tap):
    intake = public.intake
    no = await new_ticket(intake)
    path = await _path(intake, no)
    r = await intake.client.post(f"{path}/confirm", json={"solved": "yes"})
    assert r.status_code == 409 and r.json()["errors"][0]["field"] == "status"  # nothing resolved yet
    await command(intake, no, "progress", note="内部：怀疑主板故障", visible_to_customer=False)
    await command(intake, no, "resolve", outcome="resolved", solution="更换电源模块 PWR-01")
    assert "内部：怀疑主板故障" not in (await intake.client.get(path)).text  # internal notes never shown
    r = await intake.client.post(f"{path}/confirm", json={"solved": "no", "text": "还是无法开机"})
    assert r.status_code == 201
    [reopened] = await tap.wait_events(lambda e: e.subject == no and e.type == "ticket.reopened")
    assert reopened.data["actor"] == "customer" and reopened.data["reason"] == "还是无法开机"
    await command(intake, no, "resolve", outcome="resolved", solution="上门更换主板 MB-02")
    r = await intake.client.post(f"{path}/confirm", json={"solved": "maybe"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "solved"
    assert (await intake.client.post(f"{path}/confirm", json={"solved": "yes"})).status_code == 201
    r = await intake.client.post(f"{path}/confirm", json={"solved": "yes"})
    assert r.status_code == 409 and r.json()["errors"][0]["field"] == "confirmed"
    await tap.wait_events(lambda e: e.subject == no and e.type == "ticket.confirmed")
    assert (await intake.client.post(f"{path}/callback", json={})).status_code == 201
    r = await intake.client.post(f"{path}/callback", json={})
    assert r.status_code == 429 and r.json()["errors"][0]["field"] == "callback"
    [asked] = await tap.wait_events(lambda e: e.subject == no and e.type == "ticket.escalation_requested")
    assert (asked.data["reason"], asked.data["actor"]) == ("customer", "customer")
    view = await until(lambda: intake.client.get(f"/v1/tickets/{no}"), "ticket view")
    assert [e["type"] for e in view.json()["timeline"]].count("ticket.confirmed") == 1
