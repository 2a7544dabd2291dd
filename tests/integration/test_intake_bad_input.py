"""Bad input: a 4xx naming the field (HTTP) or a dead letter with the reason (AMQP); the consumer goes on."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.test_intake_create import ticket
from tests.integration.test_intake_lifecycle import cmd, new_ticket

REASON = "x-helpdesk-reason"


def fields(r) -> list[str]:
    return [e["field"] for e in r.json()["errors"]]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({**ticket(), "channel": "fax"}, 422, "channel"),
        ({k: v for k, v in ticket().items() if k != "customer"}, 422, "customer"),
        ({**ticket(), "customer": {"phone": "13812345678"}}, 422, "customer.name"),
        ({**ticket(), "urgency": 5}, 422, "urgency"),
        ({**ticket(), "customer": {"name": "x", "email": "not-an-email"}}, 422, "customer.email"),
        ({**ticket(), "received_at": "yesterday"}, 422, "received_at"),
        ({**ticket(), "received_at": "2099-01-01T00:00:00+08:00"}, 422, "received_at"),
        ({**ticket(), "subject": None, "description": None}, 422, "subject"),
        ({**ticket(), "surprise": 1}, 422, "surprise"),
        ({**ticket(), "complaint": {"type": "rude"}}, 422, "complaint.type"),
    ],
)
async def test_http_bad_ticket(intake, body, status, field):
    r = await intake.client.post("/v1/tickets", json=body)
    assert r.status_code == status, r.text
    assert field in fields(r), r.text


async def test_http_malformed_json_and_wrong_shape(intake):
    r = await intake.client.post("/v1/tickets", content=b'{"channel": "phone",', headers={"content-type": "application/json"})
    assert r.status_code == 422 and fields(r) == ["body"] and "JSON" in r.json()["errors"][0]["problem"]
    r = await intake.client.post("/v1/tickets", json=[1, 2])
    assert r.status_code == 422
    r = await intake.client.post("/v1/tickets", content=b"\xff\xfe\x00garbage", headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500 and r.json()["errors"][0]["field"] == "body"
    r = await intake.client.get("/v1/nowhere")
    assert r.status_code == 404 and r.json()["errors"][0]["field"] == "path"


async def test_http_oversized_body(intake):
    big = ticket(description="长" * 70_000)
    r = await intake.client.post("/v1/tickets", json=big)
    assert r.status_code == 413 and fields(r) == ["body"]


async def test_http_unknown_ticket_action_and_transition(intake):
    r = await cmd(intake, "20200101999999", "respond")
    assert r.status_code == 404 and fields(r) == ["ticket_no"]
    r = await intake.client.get("/v1/tickets/nonsense")
    assert r.status_code == 404 and fields(r) == ["ticket_no"]
    no = await new_ticket(intake)
    r = await cmd(intake, no, "fly")
    assert r.status_code == 404 and fields(r) == ["action"]
    r = await cmd(intake, no, "resume")
    assert r.status_code == 409 and fields(r) == ["status"] and "new" in r.json()["errors"][0]["problem"]
    r = await cmd(intake, no, "resolve", outcome="resolved", solution="handled")
    assert r.status_code == 422 and fields(r) == ["solution"]
    r = await cmd(intake, no, "resolve", outcome="maybe", solution="更换电源")
    assert r.status_code == 422 and fields(r) == ["outcome"]
    r = await cmd(intake, no, "respond", actor="")
    assert r.status_code == 422 and fields(r) == ["actor"]
    await cmd(intake, no, "close")
    r = await cmd(intake, no, "reopen", reason="again")
    assert r.status_code == 409


async def test_amqp_bad_messages_dead_lettered_with_reason_and_consumer_goes_on(intake, tap, dlq_tap, publisher):
    bad = [
        ("helpdesk.intake", "intake.phone", b"\xff\xfe not json", "body"),
        ("helpdesk.intake", "intake.phone", b'["a list"]', "body"),
        ("helpdesk.intake", "intake.phone", {**ticket(), "urgency": "whenever"}, "urgency"),
        ("helpdesk.intake", "intake.phone", {k: v for k, v in ticket().items() if k != "customer"}, "customer"),
        ("helpdesk.intake", "intake.fax", {**ticket(), "channel": "fax"}, "channel"),
        ("helpdesk.intake", "intake.chat", ticket(channel="phone"), "channel"),
        ("helpdesk.commands", "ticket.respond", {"ticket_no": "20200101999999", "actor": "a"}, "ticket_no"),
        ("helpdesk.commands", "ticket.fly", {"ticket_no": "20200101999999", "actor": "a"}, "routing_key"),
        ("helpdesk.commands", "ticket.resolve", {"ticket_no": "20200101999999", "actor": "a"}, "outcome"),
    ]
    marker = uuid.uuid4().hex
    for exchange, key, body, _ in bad:
        await publisher.publish(exchange, key, body, message_id=f"{marker}-{key}-{len(str(body))}")
    good = ticket()
    await publisher.publish("helpdesk.intake", "intake.phone", good)
    await tap.wait_events(lambda e: e.type == "ticket.created" and e.data.get("external_id") == good["external_id"])
    dead = await dlq_tap.wait_messages(lambda m: (m.message_id or "").startswith(marker), count=len(bad))
    by_id = {m.message_id: m for m in dead}
    for exchange, key, body, field in bad:
        m = by_id[f"{marker}-{key}-{len(str(body))}"]
        assert field in m.headers[REASON], (key, m.headers[REASON])
        assert m.headers["x-original-exchange"] == exchange and m.routing_key == key


async def test_amqp_impossible_transition_dead_lettered(intake, dlq_tap, publisher):
    no = await new_ticket(intake)
    await publisher.publish("helpdesk.commands", "ticket.reopen", {"ticket_no": no, "actor": "a", "reason": "x"},
                            message_id=f"reopen-{no}")
    [m] = await dlq_tap.wait_messages(lambda m: m.message_id == f"reopen-{no}")
    assert "cannot reopen a ticket that is new" in m.headers[REASON]
    view = (await intake.client.get(f"/v1/tickets/{no}")).json()
    assert view["status"] == "new" and len(view["timeline"]) == 1
