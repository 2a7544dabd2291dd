"""The rebuild reads past events it refuses (no trusted publisher) and acks them too: more refused
messages than the replay's prefetch never stall it, and they change no fact. Runs last in the package:
it rebuilds the facts of the whole stream."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import aio_pika

from shared.envelope import CONTENT_TYPE, CloudEvent
from shared.topology import EVENT_LOG
from shared.trust import url_user


async def test_refused_events_on_the_stream_neither_stall_the_rebuild_nor_change_a_fact(run_env, review):
    from services.review import cli
    from services.review.config import ReviewSettings
    from shared.settings import Settings

    forged_no = f"2099{uuid.uuid4().int % 10**10:010d}"
    trusted_no = f"2098{uuid.uuid4().int % 10**10:010d}"
    conn = await aio_pika.connect(run_env["AMQP_URL"])
    try:
        channel = await conn.channel(publisher_confirms=True)
        for i in range(40):  # 40 refused > batch 5 x prefetch 5: every one of them must be acked as read
            event = CloudEvent(id=str(uuid.uuid4()), source="/helpdesk/intake", type="ticket.created",
                               subject=forged_no, time=datetime.now(UTC),
                               data={"ticket_no": forged_no, "seq": i + 1, "channel": "web"})
            await channel.default_exchange.publish(  # no user_id: an untrusted publisher
                aio_pika.Message(event.to_bytes(), message_id=event.id, content_type=CONTENT_TYPE,
                                 delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=EVENT_LOG)
        trusted = CloudEvent(id=str(uuid.uuid4()), source="/helpdesk/intake", type="ticket.created",
                             subject=trusted_no, time=datetime.now(UTC),
                             data={"ticket_no": trusted_no, "seq": 1, "channel": "web",
                                   "received_at": datetime.now(UTC).isoformat()})
        await channel.default_exchange.publish(  # after them: the rebuild must get this far
            aio_pika.Message(trusted.to_bytes(), message_id=trusted.id, content_type=CONTENT_TYPE,
                             user_id=url_user(run_env["AMQP_URL"]),
                             delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=EVENT_LOG)
    finally:
        await conn.close()
    # bounded: a replay that stops acking stalls for ever (that was the bug), so fail instead of hanging
    result = await asyncio.wait_for(cli.rebuild(Settings(), ReviewSettings(), batch=5), 120)
    assert result["skipped"] >= 40, result
    async with review.running.rt.pool.acquire() as c:
        assert await c.fetchval("SELECT count(*) FROM review.facts WHERE ticket_no = $1", forged_no) == 0
        assert await c.fetchval("SELECT count(*) FROM review.facts WHERE ticket_no = $1", trusted_no) == 1
