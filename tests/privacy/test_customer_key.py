"""customer_key in ticket.created (contract): the same customer gives the same key whatever the
spelling of the phone, the case of the email; the id when there is neither; nothing raw in the event."""

from __future__ import annotations

import hashlib
import hmac
import uuid

import orjson

from shared.customers import customer_key, normalise_phone
from shared.settings import Settings

PHONE_SPELLINGS = ["13812345678", "138 1234 5678", "138-1234-5678", "+86 13812345678", "+86-138-1234-5678",
                   "0086 13812345678", "１３８１２３４５６７８", "(+86) 138 1234 5678"]


def _body(**customer):
    return {"channel": "web", "external_id": f"web-{uuid.uuid4().hex}", "subject": "打印机卡纸",
            "description": "请回电", "customer": {"name": "李雷", **customer}}


def _expected(material: str) -> str:
    secret = Settings().customer_key_secret.encode()
    return hmac.new(secret, material.encode(), hashlib.sha256).hexdigest()


def test_normalised_phone_is_e164_with_86_default():
    assert {normalise_phone(p) for p in PHONE_SPELLINGS} == {"+8613812345678"}
    assert normalise_phone("+1 415 555 0100") == "+14155550100"
    assert normalise_phone("010-12345678") == "+861012345678"


def test_key_prefers_phone_then_email_then_id():
    s = "k"
    by_phone = customer_key(secret=s, phone="13812345678", email="a@b.cn", customer_id="u1")
    assert by_phone == hmac.new(b"k", b"+8613812345678", hashlib.sha256).hexdigest()
    assert customer_key(secret=s, email="Li.Lei@Example.COM", customer_id="u1") == \
        hmac.new(b"k", b"li.lei@example.com", hashlib.sha256).hexdigest()
    assert customer_key(secret=s, customer_id="u1") == hmac.new(b"k", b"u1", hashlib.sha256).hexdigest()
    assert customer_key(secret=s) is None
    assert customer_key(secret="other", customer_id="u1") != customer_key(secret=s, customer_id="u1")


async def _created(intake, tap, body):
    r = await intake.client.post("/v1/tickets", json=body)
    assert r.status_code == 201, r.text
    no = r.json()["ticket_no"]
    [event] = await tap.wait_events(lambda e: e.subject == no and e.type == "ticket.created")
    raw = next(m.body for m in tap.messages if orjson.loads(m.body).get("id") == event.id)
    return no, event, raw


async def test_same_phone_in_any_spelling_gives_one_key_over_http_and_amqp(intake, tap, publisher):
    keys = set()
    for spelling in PHONE_SPELLINGS:
        no, event, raw = await _created(intake, tap, _body(phone=spelling))
        keys.add(event.data["customer_key"])
        assert event.data["customer"]["name"] == "李*" and "李雷".encode() not in raw
        assert b"13812345678" not in raw and "１３８１２３４５６７８".encode() not in raw
        assert b"1234 5678" not in raw and b"1234-5678" not in raw
        async with intake.rt.pool.acquire() as conn:
            stored = await conn.fetchval("SELECT customer_key FROM intake.tickets WHERE ticket_no = $1", no)
        assert stored == event.data["customer_key"]
    ext = f"chat-{uuid.uuid4().hex}"
    await publisher.publish("helpdesk.intake", "intake.chat",
                            {**_body(phone="+86 138-1234-5678"), "channel": "chat", "external_id": ext})
    [event] = await tap.wait_events(lambda e: e.type == "ticket.created" and e.data.get("external_id") == ext)
    keys.add(event.data["customer_key"])
    assert keys == {_expected("+8613812345678")}


async def test_email_case_does_not_matter_and_email_is_masked(intake, tap):
    _, a, raw_a = await _created(intake, tap, _body(email="Li.Lei@Example.com"))
    _, b, raw_b = await _created(intake, tap, _body(email="li.lei@example.COM"))
    assert a.data["customer_key"] == b.data["customer_key"] == _expected("li.lei@example.com")
    assert b"Li.Lei@" not in raw_a and b"li.lei@" not in raw_b


async def test_id_fallback_and_an_id_that_is_a_contact_is_masked(intake, tap):
    _, a, _ = await _created(intake, tap, _body(id="wx-openid-oABC123"))
    assert a.data["customer_key"] == _expected("wx-openid-oABC123")
    assert a.data["customer"]["id"] == "wx-openid-oABC123"  # an opaque id is kept (subscribers match on it)
    body = _body(id="13912345678")
    body["external_id"] = "lilei@example.com"
    no, b, raw = await _created(intake, tap, body)
    assert b.data["customer_key"] == _expected("13912345678")  # the id as given: no phone or email
    assert b.data["customer"]["id"] == "139****5678"
    assert b.data["external_id"] == "l***@example.com"
    assert b"13912345678" not in raw and b"lilei@" not in raw
    view = (await intake.client.get(f"/v1/tickets/{no}")).json()
    assert view["customer"]["id"] == "139****5678"


async def test_no_contact_at_all_gives_a_null_key(intake, tap):
    _, event, _ = await _created(intake, tap, _body())
    assert event.data["customer_key"] is None
