"""The customer-side clocks on the real broker and database, every service running: a promised time
(``eta`` on ``ticket.progress``) told to the customer, warned, breached and escalated by routing; a new
promise or the resolution keeps it; the ``next_update`` clock (policy_customer.toml: 4 s) warns the
assignee, breaches and is escalated, restarts on a visible note, pauses while waiting."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from tests.customer.conftest import command, new_ticket, until

TZ = ZoneInfo("Asia/Shanghai")


def _sla(no: str, type_: str, metric: str):  # noqa: ANN202
    return lambda e: e.subject == no and e.type == type_ and e.data.get("metric") == metric


async def _assignee(tap, no: str) -> str:  # noqa: ANN001
    [routed] = await tap.wait_events(lambda e: e.subject == no and e.type == "ticket.routed")
    assert routed.data["assignee"], routed.data
    return routed.data["assignee"]


async def _clocks(sla, no: str) -> dict:  # noqa: ANN001
    r = await sla.client.get(f"/v1/sla/{no}")
    assert r.status_code == 200, r.text
    return {c["metric"]: c for c in r.json()["clocks"]}


async def test_missed_promise_warns_breaches_and_is_escalated(public, sla, staffed, notification, tap):
    intake = public.intake
    day = datetime.now(TZ).date() - timedelta(days=1)
    notification.set_clock(datetime.combine(day, time(12, 0), tzinfo=TZ))  # daytime: the customer is told now
    try:
        no = await new_ticket(intake)
        await _assignee(tap, no)
        eta = datetime.now(UTC) + timedelta(seconds=3)
        await command(intake, no, "progress", note="预计很快完成维修", eta=eta.isoformat())
        [started] = await tap.wait_events(_sla(no, "sla.started", "eta"))
        assert datetime.fromisoformat(started.data["due_at"]) == eta
        told = await notification.sent.wait(no, "progress")
        assert eta.astimezone(TZ).strftime("%Y-%m-%d %H:%M") in told["text"] and "预计" in told["text"]
        [warning] = await tap.wait_events(_sla(no, "sla.warning", "eta"))
        assert 0 <= warning.data["remaining_s"] <= 3
        [breached] = await tap.wait_events(_sla(no, "sla.breached", "eta"))
        assert datetime.fromisoformat(breached.data["breached_at"]) >= eta
        escalations = await tap.wait_events(
            lambda e: e.subject == no and e.type == "ticket.escalated" and "eta" in e.data["reason"], count=2)
        assert {e.data["trigger"] for e in escalations} == {"sla_warning", "sla_breached"}
        assert (await _clocks(sla, no))["eta"]["breached"] is True
    finally:
        notification.set_clock(None)


async def test_new_promise_replaces_the_old_and_the_resolution_keeps_it(public, sla, tap):
    intake = public.intake
    no = await new_ticket(intake)
    first = datetime.now(UTC) + timedelta(minutes=30)
    second = datetime.now(UTC) + timedelta(hours=2)
    await command(intake, no, "progress", note="等待备件", eta=first.isoformat())
    await command(intake, no, "progress", note="备件延迟，改为两小时内", eta=second.isoformat())
    starts = await tap.wait_events(_sla(no, "sla.started", "eta"), count=2)
    assert [datetime.fromisoformat(e.data["due_at"]) for e in starts] == [first, second]
    await command(intake, no, "resolve", outcome="resolved", solution="更换主板 MB-02")
    [met] = await tap.wait_events(_sla(no, "sla.met", "eta"))
    assert datetime.fromisoformat(met.data["due_at"]) == second
    clock = (await _clocks(sla, no))["eta"]
    assert clock["state"] == "met" and datetime.fromisoformat(str(clock["due_at"])) == second
    r = await intake.client.post(f"/v1/tickets/{no}/progress",
                                 json={"actor": "eng-wang", "note": "x", "eta": "2020-01-01T00:00:00+08:00"})
    assert r.status_code == 409  # resolved: no more notes; a past eta on an open ticket is a 422 (below)
    other = await new_ticket(intake)
    r = await intake.client.post(f"/v1/tickets/{other}/progress",
                                 json={"actor": "eng-wang", "note": "x", "eta": "2020-01-01T00:00:00+08:00"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "eta"


async def test_next_update_warns_the_assignee_breaches_escalates_restarts_and_pauses(
        public, sla, staffed, notification, tap):
    intake = public.intake
    no = await new_ticket(intake)
    assignee = await _assignee(tap, no)
    await command(intake, no, "respond", message="您好，已收到，正在排查")
    [started] = await tap.wait_events(_sla(no, "sla.started", "next_update"))
    assert started.data["policy"].startswith("default:")
    await tap.wait_events(_sla(no, "sla.warning", "next_update"))
    warned = await notification.sent.wait(no, "sla_warning")  # to the assignee (log channel)
    assert warned["recipient"] == assignee and "向客户更新进展" in warned["text"]
    await tap.wait_events(_sla(no, "sla.breached", "next_update"))
    [escalated] = await tap.wait_events(lambda e: e.subject == no and e.type == "ticket.escalated"
                                        and e.data["trigger"] == "sla_breached")
    assert "next_update" in escalated.data["reason"] and escalated.data["level"] >= 2

    await command(intake, no, "progress", note="已定位为电源故障", visible_to_customer=True)  # restarts it
    await tap.wait_events(_sla(no, "sla.started", "next_update"), count=2)
    await command(intake, no, "wait", reason="请提供购买凭证")
    paused = await until(lambda: _paused(sla, no), "next_update paused while waiting")
    assert paused["next_timer_at"] is None
    r = await intake.client.get(f"/v1/tickets/{no}/contact")
    path = urlsplit(r.json()["progress_url"]).path
    r = await intake.client.post(f"{path}/reply", json={"text": "凭证已上传"})  # the customer answers: resumes
    assert r.status_code == 201
    await tap.wait_events(_sla(no, "sla.started", "next_update"), count=3)
    assert (await _clocks(sla, no))["next_update"]["state"] == "running"
    metrics = (await sla.client.get("/metrics")).text
    assert 'helpdesk_sla_breached_total{metric="next_update"' in metrics
    assert 'helpdesk_sla_open_timers{metric="next_update"}' in metrics


async def _paused(sla, no: str):  # noqa: ANN001, ANN202
    clock = (await _clocks(sla, no)).get("next_update")
    return clock if clock and clock["state"] == "paused" else None
