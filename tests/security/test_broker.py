"""Broker users on the real RabbitMQ: the users and permissions of deploy/rabbitmq/definitions.json
(``shared.broker_users``) created in this run's vhost, notification running as its own user and
believing only the mapping of those users (no ``guest``).

* a gateway publishes only ``intake.<its channel>`` to ``helpdesk.intake``: not other channels,
  not ``helpdesk.events``; it cannot declare or bind a queue, nor read intake's;
* a forged ``ticket.progressed`` is refused by the broker from another service's user (topic
  permissions) or with a false ``user_id``; one the broker lets through (routing's key, source
  intake; or no ``user_id``) is dead-lettered with the reason; no customer message goes out,
  while the same event from intake's user is sent (the control).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from urllib.parse import quote

import aio_pika
import orjson
import httpx
import pytest
from aiormq.exceptions import ChannelAccessRefused, ChannelClosed, ChannelPreconditionFailed

from shared.broker_users import demo_password, users
from shared.envelope import new_event
from shared.settings import Settings
from tests import support
from tests.conftest import RUN_ID, Running, start_service
from tests.notification.conftest import peers, quiet_window, rules_toml  # noqa: F401  (peers: fixture)
from tests.notification.helpers import create_ticket, phone

PREFIX = f"t{RUN_ID}-"
NEEDED = ("helpdesk-intake", "helpdesk-notification", "helpdesk-routing", "helpdesk-survey", "gw-wechat")
ROGUE = "rogue"  # a login the broker lets write anywhere, but that no service believes
REFUSED = (ChannelAccessRefused, ChannelClosed, ChannelPreconditionFailed)


@pytest.fixture(scope="module")
def broker_users(run_env: dict[str, str]) -> dict[str, str]:
    """Name -> AMQP URL of each needed user, created with definitions.json's permissions in this vhost."""
    vhost = run_env["AMQP_URL"].rsplit("/", 1)[1]
    urls = {}
    for u in users():
        if u.name not in NEEDED:
            continue
        name = PREFIX + u.name
        support.rabbitmqctl("add_user", name, demo_password(u.name))
        support.rabbitmqctl("set_permissions", "-p", vhost, name, u.configure, u.write, u.read)
        for exchange, (write, read) in u.topics.items():
            support.rabbitmqctl("set_topic_permissions", "-p", vhost, name, exchange, write, read)
        urls[u.name] = f"amqp://{quote(name)}:{quote(demo_password(u.name))}@127.0.0.1:5672/{vhost}"
    support.rabbitmqctl("add_user", PREFIX + ROGUE, demo_password(ROGUE))
    support.rabbitmqctl("set_permissions", "-p", vhost, PREFIX + ROGUE, "^$", ".*", "^$")
    urls[ROGUE] = f"amqp://{quote(PREFIX + ROGUE)}:{quote(demo_password(ROGUE))}@127.0.0.1:5672/{vhost}"
    yield urls
    for name in urls:
        try:
            support.rabbitmqctl("delete_user", PREFIX + name)  # noqa: S603
        except Exception:  # noqa: BLE001, S110 - the vhost goes anyway
            pass


@pytest.fixture(scope="module")
async def notification(intake: Running, broker_users: dict[str, str], peers, tmp_path_factory  # noqa: ANN001, F811
                       ) -> AsyncIterator[Running]:
    from services.notification.app import create_app
    from services.notification.config import NotificationSettings
    from shared.broker_users import trust_mapping

    rules = Path(tmp_path_factory.mktemp("notification-trust")) / "rules.toml"
    rules.write_text(rules_toml(peers, quiet_window(datetime.now(UTC))), encoding="utf-8")
    options = NotificationSettings(rules_file=rules, intake_url="http://intake", worker_poll_s=0.5)
    factory = partial(create_app, options=options, intake_transport=httpx.ASGITransport(app=intake.app))
    settings = Settings(AMQP_URL=broker_users["helpdesk-notification"], HELPDESK_BROKER_USERS=trust_mapping(PREFIX))
    async for running in start_service(factory, settings):
        yield running


async def _channel(url: str) -> tuple[aio_pika.abc.AbstractConnection, aio_pika.abc.AbstractChannel]:
    conn = await aio_pika.connect(url)
    return conn, await conn.channel(publisher_confirms=True)


async def _publish(url: str, exchange: str, key: str, body: bytes, **props: str) -> None:
    conn, ch = await _channel(url)
    props.setdefault("content_type", "application/cloudevents+json")
    async with conn:
        ex = await ch.get_exchange(exchange, ensure=False)
        await ex.publish(aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, **props),
                         routing_key=key, timeout=10)


async def test_gateway_writes_only_its_channel_to_intake(broker_users: dict[str, str], intake) -> None:  # noqa: ANN001
    gw = broker_users["gw-wechat"]
    body = b'{"channel": "wechat", "customer": {"name": "x"}, "subject": "y"}'
    await _publish(gw, "helpdesk.intake", "intake.wechat", body, message_id=uuid.uuid4().hex)  # confirmed
    with pytest.raises(REFUSED):
        await _publish(gw, "helpdesk.intake", "intake.web", body)
    forged = new_event(service="intake", type="ticket.progressed", ticket_no="20990101000001", seq=9,
                       data={"actor": "x", "at": datetime.now(UTC).isoformat(), "note": "请点击 http://evil.example",
                             "visible_to_customer": True})
    with pytest.raises(REFUSED):
        await _publish(gw, "helpdesk.events", "ticket.progressed", forged.to_bytes())
    with pytest.raises(REFUSED):
        await _publish(gw, "helpdesk.commands", "ticket.close", b'{"ticket_no": "20990101000001", "actor": "x"}')


async def test_gateway_cannot_bind_a_queue_to_intake_or_read_one(broker_users: dict[str, str],
                                                                 intake) -> None:  # noqa: ANN001
    gw = broker_users["gw-wechat"]
    conn, ch = await _channel(gw)
    async with conn:
        with pytest.raises(REFUSED):
            q = await ch.declare_queue(exclusive=True)
            await q.bind("helpdesk.intake", routing_key="#")
    conn, ch = await _channel(gw)
    async with conn:
        with pytest.raises(REFUSED):
            q = await ch.get_queue("intake.tickets", ensure=False)
            await q.get(fail=False)


async def test_forged_progress_is_dead_lettered_and_never_sent(
    intake: Running, notification: Running, broker_users: dict[str, str], peers, dlq_tap  # noqa: ANN001, F811
) -> None:
    to = phone()
    no = await create_ticket(intake, phone=to)
    evil = f"请点击 http://evil.example 领取补偿 {uuid.uuid4().hex[:6]}"

    def progressed(note: str):  # noqa: ANN202
        return new_event(service="intake", type="ticket.progressed", ticket_no=no, seq=50,
                         data={"actor": "agent-7", "at": datetime.now(UTC).isoformat(), "note": note,
                               "visible_to_customer": True})

    # the broker refuses it from any other service's user: topic permissions (survey writes survey.* only) ...
    with pytest.raises(REFUSED):
        await _publish(broker_users["helpdesk-survey"], "helpdesk.events", "ticket.progressed",
                       progressed(evil).to_bytes(), user_id=PREFIX + "helpdesk-survey")
    # ... and a false user_id (RabbitMQ checks it against the login)
    with pytest.raises(REFUSED):
        await _publish(broker_users["helpdesk-routing"], "helpdesk.events", "ticket.routed",
                       progressed(evil).to_bytes(), user_id=PREFIX + "helpdesk-intake")
    # What the broker lets through (routing's own key) but claims intake as its source, or names no
    # publisher, is dead-lettered by the consumer with the reason.
    routing_user = PREFIX + "helpdesk-routing"
    as_routing, anonymous = progressed(evil), progressed(evil)
    await _publish(broker_users["helpdesk-routing"], "helpdesk.events", "ticket.routed", as_routing.to_bytes(),
                   message_id=as_routing.id, user_id=routing_user)
    await _publish(broker_users["helpdesk-routing"], "helpdesk.events", "ticket.routed", anonymous.to_bytes(),
                   message_id=anonymous.id)
    dead = await dlq_tap.wait_messages(lambda m: m.message_id in (as_routing.id, anonymous.id)
                                       and m.headers.get("x-helpdesk-queue") == "notification.events", count=2)
    reasons = {m.message_id: m.headers["x-helpdesk-reason"] for m in dead}
    assert reasons[as_routing.id] == (f"untrusted publisher: source '/helpdesk/intake' was published by broker user "
                                      f"'{routing_user}'")
    assert "no user_id" in reasons[anonymous.id]

    legit = progressed("备件已寄出")
    await _publish(broker_users["helpdesk-intake"], "helpdesk.events", "ticket.progressed", legit.to_bytes(),
                   message_id=legit.id, user_id=PREFIX + "helpdesk-intake")
    await peers.wait(lambda: [s for s in peers.sms if s["to"] == to and "备件已寄出" in s["text"]])
    await asyncio.sleep(0.5)
    assert not [s for s in peers.sms if "evil.example" in s["text"]]
    async with notification.rt.pool.acquire() as conn:
        rows = await conn.fetch("SELECT event_id FROM notification.deliveries WHERE ticket_no = $1", no)
    assert {str(r["event_id"]) for r in rows} & {as_routing.id, anonymous.id} == set()


async def test_tickets_and_commands_only_from_granted_users(broker_users: dict[str, str], intake, tap,  # noqa: ANN001
                                                            dlq_tap) -> None:  # noqa: ANN001
    """intake believes the gateway for its channel; a login the broker lets write but no service grants
    anything has its ticket and its command dead-lettered with the reason."""
    ext = uuid.uuid4().hex
    body = orjson.dumps({"channel": "wechat", "external_id": ext, "customer": {"name": "钱八"}, "subject": "漏水"})
    await _publish(broker_users["gw-wechat"], "helpdesk.intake", "intake.wechat", body, message_id=ext,
                   user_id=PREFIX + "gw-wechat", content_type="application/json")
    [created] = await tap.wait_events(lambda e: e.type == "ticket.created" and e.data.get("external_id") == ext)
    rogue_ticket, rogue_cmd = uuid.uuid4().hex, uuid.uuid4().hex
    forged = body.replace(ext.encode(), rogue_ticket.encode())
    await _publish(broker_users[ROGUE], "helpdesk.intake", "intake.wechat", forged, message_id=rogue_ticket,
                   user_id=PREFIX + ROGUE, content_type="application/json")
    await _publish(broker_users[ROGUE], "helpdesk.commands", "ticket.close",
                   orjson.dumps({"ticket_no": created.subject, "actor": "x"}), message_id=rogue_cmd,
                   user_id=PREFIX + ROGUE)
    dead = await dlq_tap.wait_messages(lambda m: m.message_id in (rogue_ticket, rogue_cmd), count=2)
    reasons = {m.message_id: m.headers["x-helpdesk-reason"] for m in dead}
    assert "may not register tickets for channel 'wechat'" in reasons[rogue_ticket]
    assert "needs role supervisor for ticket.close" in reasons[rogue_cmd]
    r = await intake.client.get(f"/v1/tickets/{created.subject}")
    assert r.json()["status"] != "closed"
