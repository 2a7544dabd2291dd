"""SLA clocks through the real broker and database: real tickets from intake, routing's and the
survey's events published as those services would, announcements observed on helpdesk.events."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from tests.sla.conftest import emit, routed


async def new_ticket(intake, **over) -> str:
    body = {"channel": "phone", "external_id": f"sla-{uuid.uuid4().hex}",
            "customer": {"name": "李雷", "phone": "13812345678"}, "subject": "设备无法启动", "urgency": "urgent"}
    body.update(over)
    r = await intake.client.post("/v1/tickets", json=body)
    assert r.status_code == 201, r.text
    return r.json()["ticket_no"]


async def command(intake, no: str, action: str, **body) -> None:
    r = await intake.client.post(f"/v1/tickets/{no}/{action}", json={"actor": "agent-7", **body})
    assert r.status_code == 200, r.text


async def states(sla, no: str) -> dict[str, str]:
    r = await sla.client.get(f"/v1/sla/{no}")
    return {c["metric"]: c["state"] for c in r.json().get("clocks", [])}


async def wait_state(sla, no: str, metric: str, state: str, timeout: float = 10) -> None:
    """The SLA service applies events asynchronously: poll its view until ``metric`` is ``state``."""
    async def poll() -> None:
        while (await states(sla, no)).get(metric) != state:
            await asyncio.sleep(0.1)

    await asyncio.wait_for(poll(), timeout)


def sla_event(no: str, type_: str, metric: str | None = None):
    return lambda e: e.subject == no and e.type == type_ and (metric is None or e.data["metric"] == metric)


async def test_created_starts_clocks_and_response_meets(sla, intake, tap):
    no = await new_ticket(intake)
    started = await tap.wait_events(sla_event(no, "sla.started"), count=2)
    assert {e.data["metric"] for e in started} == {"first_response", "resolution"}
    assert all(e.data["policy"] == "default:P3" and e.source == "/helpdesk/sla" for e in started)
    await command(intake, no, "respond", message="我们已收到")
    [met] = await tap.wait_events(sla_event(no, "sla.met", "first_response"))
    assert met.data["business_seconds"] >= 0 and "met_at" in met.data and "due_at" in met.data
    assert await states(sla, no) == {"first_response": "met", "resolution": "running"}
    metrics = (await sla.client.get("/metrics")).text
    assert 'helpdesk_sla_met_total{metric="first_response",priority="P3"}' in metrics
    assert 'helpdesk_first_response_seconds_count{channel="phone",priority="P3"}' in metrics


async def test_routed_p1_warns_then_breaches_once(sla, intake, tap, publisher):
    no = await new_ticket(intake)
    await tap.wait_events(sla_event(no, "sla.started"), count=2)
    await emit(publisher, service="routing", type="ticket.routed", ticket_no=no, **routed("P1"))
    [restarted] = await tap.wait_events(lambda e: sla_event(no, "sla.started", "first_response")(e)
                                        and e.data["policy"] == "default:P1")
    [warning] = await tap.wait_events(sla_event(no, "sla.warning", "first_response"))
    [breach] = await tap.wait_events(sla_event(no, "sla.breached", "first_response"))
    assert warning.data["due_at"] == breach.data["due_at"] == restarted.data["due_at"]
    assert 0 <= warning.data["remaining_s"] <= 1.0
    assert datetime.fromisoformat(breach.data["breached_at"]) >= datetime.fromisoformat(breach.data["due_at"])
    await command(intake, no, "respond")  # late: the breach was announced, no sla.met follows
    await wait_state(sla, no, "first_response", "breached")
    assert tap.events(sla_event(no, "sla.met", "first_response")) == []
    assert len(tap.events(sla_event(no, "sla.breached"))) == 1


async def test_pause_and_resume_move_the_deadline(sla, intake, tap, publisher):
    no = await new_ticket(intake)
    await emit(publisher, service="routing", type="ticket.routed", ticket_no=no, **routed("P2"))
    [first] = await tap.wait_events(lambda e: sla_event(no, "sla.started", "resolution")(e)
                                    and e.data["policy"] == "default:P2")
    await command(intake, no, "wait", reason="等待客户提供截图")
    await wait_state(sla, no, "resolution", "paused")
    r = await sla.client.get(f"/v1/sla/{no}")
    for c in r.json()["clocks"]:
        assert c["state"] == "paused" and c["next_timer_at"] is None
    await command(intake, no, "resume")
    [again] = await tap.wait_events(lambda e: sla_event(no, "sla.started", "resolution")(e)
                                    and e.data["due_at"] != first.data["due_at"])
    assert datetime.fromisoformat(again.data["due_at"]) > datetime.fromisoformat(first.data["due_at"])


async def test_reprioritise_recomputes_keeping_elapsed(sla, intake, tap):
    no = await new_ticket(intake)
    [p3] = await tap.wait_events(sla_event(no, "sla.started", "first_response"))
    await command(intake, no, "reprioritize", priority="P2", reason="客户投诉")
    [p2] = await tap.wait_events(lambda e: sla_event(no, "sla.started", "first_response")(e)
                                 and e.data["policy"] == "default:P2")
    r = await intake.client.get(f"/v1/tickets/{no}")
    received = datetime.fromisoformat(r.json()["received_at"])
    due = datetime.fromisoformat(p2.data["due_at"])
    assert due == received + timedelta(hours=1)  # P2 24x7 1 h from received_at, not from the change
    assert p3.data["policy"] == "default:P3"


async def test_resolve_meets_and_reopen_restarts_resolution(sla, intake, tap):
    no = await new_ticket(intake)
    await command(intake, no, "respond")
    await command(intake, no, "resolve", outcome="resolved", solution="更换电源模块 PWR-01")
    [met] = await tap.wait_events(sla_event(no, "sla.met", "resolution"))
    await command(intake, no, "reopen", reason="问题复现")
    started = await tap.wait_events(sla_event(no, "sla.started", "resolution"), count=2)
    assert datetime.fromisoformat(started[-1].data["due_at"]) >= datetime.fromisoformat(met.data["due_at"])
    assert (await states(sla, no))["resolution"] == "running"
    text = (await sla.client.get("/metrics")).text
    assert 'helpdesk_resolution_seconds_count{category="none",priority="P3"}' in text


async def test_negative_survey_callback_met_and_breached(sla, intake, tap, publisher):
    kept, missed = await new_ticket(intake), await new_ticket(intake)
    for no in (kept, missed):
        await tap.wait_events(sla_event(no, "sla.started"), count=2)
        await emit(publisher, service="survey", type="survey.negative", ticket_no=no, survey_id="s", reason="不满意")
    await tap.wait_events(lambda e: e.type == "sla.started" and e.data["metric"] == "callback"
                          and e.subject in (kept, missed), count=2)
    await command(intake, kept, "progress", note="经理已回电致歉")
    await tap.wait_events(sla_event(kept, "sla.met", "callback"))
    await tap.wait_events(sla_event(missed, "sla.breached", "callback"))
    assert tap.events(sla_event(kept, "sla.breached", "callback")) == []


async def test_deadline_already_passed_breaches_at_once(sla, tap, publisher):
    no = f"{datetime.now(UTC):%Y%m%d}9{uuid.uuid4().int % 10**5:05d}"
    old = datetime.now(UTC) - timedelta(days=30)
    await emit(publisher, service="routing", type="ticket.routed", ticket_no=no, **routed("P1"))
    await emit(publisher, service="intake", type="ticket.created", ticket_no=no, channel="web",
               customer={"name": "王", "tier": "vip"}, urgency="urgent", impact="single",
               received_at=old.isoformat(), created_at=old.isoformat())
    breaches = await tap.wait_events(sla_event(no, "sla.breached"), count=2)
    assert {e.data["metric"] for e in breaches} == {"first_response", "resolution"}


async def test_bad_events_dead_lettered(sla, intake, tap, dlq_tap, publisher):
    unknown = "20260101999999"
    await emit(publisher, service="intake", type="ticket.responded", ticket_no=unknown, actor="a",
               at=datetime.now(UTC).isoformat(), first=True)
    no = await new_ticket(intake)
    await tap.wait_events(sla_event(no, "sla.started"), count=2)
    await emit(publisher, service="intake", type="ticket.responded", ticket_no=no, seq=2, actor="a",
               at=(datetime.now(UTC) - timedelta(days=1)).isoformat(), first=True)
    await emit(publisher, service="intake", type="ticket.teleported", ticket_no=no, seq=100)
    await publisher.publish("helpdesk.events", "ticket.waiting", b"{not json")

    def reason(m) -> str:
        return str((m.headers or {}).get("x-helpdesk-reason", ""))

    def ours(m) -> bool:
        return (m.headers or {}).get("x-helpdesk-queue") == "sla.tickets"

    msgs = await dlq_tap.wait_messages(ours, count=4)
    reasons = " | ".join(reason(m) for m in msgs)
    assert "unknown ticket 20260101999999" in reasons
    assert "before the ticket was received" in reasons
    assert "unknown event type 'ticket.teleported'" in reasons
    assert (await states(sla, no))["first_response"] == "running"


async def test_redelivered_event_changes_nothing(sla, tap, publisher):
    no = f"{datetime.now(UTC):%Y%m%d}8{uuid.uuid4().int % 10**5:05d}"
    now = datetime.now(UTC)
    data = {"channel": "web", "customer": {"name": "王"}, "urgency": "normal", "impact": "single",
            "received_at": now.isoformat(), "created_at": now.isoformat()}
    from shared.envelope import CONTENT_TYPE, new_event

    event = new_event(service="intake", type="ticket.created", ticket_no=no, seq=1, data=data)
    for _ in range(3):
        await publisher.publish("helpdesk.events", "ticket.created", event.to_bytes(), content_type=CONTENT_TYPE)
    await tap.wait_events(sla_event(no, "sla.started"), count=2)
    async with sla.rt.pool.acquire() as conn:
        await conn.execute("SELECT 1")
        n = await conn.fetchval("SELECT count(*) FROM sla.inbox WHERE message_id = $1", event.id)
    assert n == 1
    assert len(tap.events(sla_event(no, "sla.started"))) == 2


async def test_healthz_metrics_asyncapi(sla):
    assert (await sla.client.get("/healthz")).json()["checks"] == {"database": True, "broker": True}
    text = (await sla.client.get("/metrics")).text
    assert 'helpdesk_sla_open_timers{metric="resolution"}' in text
    doc = (await sla.client.get("/asyncapi.json")).json()
    assert any("sla.tickets" in name for name in doc["channels"])
    assert (await sla.client.get("/v1/sla/20260101000001", headers={"X-API-Key": "nope"})).status_code == 401
