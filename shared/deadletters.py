"""Operator tools for ``helpdesk.dead-letters``: look at what was refused and why, and replay
messages to where they came from once the cause is fixed.

    python -m shared.deadletters list [--limit 20]
    python -m shared.deadletters replay [--limit N] [--queue intake.tickets]

Replay takes messages off the dead-letter queue one by one, republishes each (persistent, with
publisher confirms) to its original exchange and routing key, then acks it: a message is never
dropped, at worst published twice (consumers are idempotent).

Personal data: a body is masked before it is dead-lettered (``mask_body``: phones, emails, ID and
card numbers, in JSON values or plain text) and so is the reason; ``list`` masks again what it prints
(a message the broker dead-lettered itself is shown masked too). A replayed message therefore carries
masked contacts; replay drops masked ``customer.phone`` / ``customer.email`` so that an intake
message still registers its ticket (the channel resends the original when the contact matters).
The queue keeps a dead letter ``HELPDESK_DEAD_LETTER_TTL`` (30 days), at most ``HELPDESK_DEAD_LETTER_MAX``.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import orjson

from shared.masking import mask_deep, mask_text
from shared.settings import Settings
from shared.topology import DEAD_LETTER_QUEUE, REASON_HEADER
from shared.trust import url_user

_OURS = (REASON_HEADER, "x-helpdesk-queue", "x-original-exchange", "x-original-routing-key")


def mask_body(body: bytes) -> bytes:
    """A message body with every contact masked: JSON values one by one (the shape is kept), any other
    body as text."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return mask_text(body.decode("utf-8", errors="replace")).encode()
    return orjson.dumps(mask_deep(doc))


def _replayable(body: bytes) -> bytes:
    """Masked contacts (``138****5678``) removed from an intake message: it registers without them."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    customer = doc.get("customer") if isinstance(doc, dict) else None
    if not isinstance(customer, dict):
        return body
    masked = [k for k in ("phone", "email", "id") if "*" in str(customer.get(k) or "")]
    for key in masked:
        customer.pop(key)
    return orjson.dumps(doc) if masked else body


def origin(msg: aio_pika.abc.AbstractIncomingMessage) -> tuple[str, str, str]:
    """(exchange, routing key, reason) a dead letter came from, whoever dead-lettered it."""
    headers = msg.headers or {}
    if "x-original-exchange" in headers:  # refused by a consumer (shared.consumer.dead_letter)
        return (str(headers["x-original-exchange"]), str(headers.get("x-original-routing-key") or msg.routing_key),
                str(headers.get(REASON_HEADER, "")))
    deaths = headers.get("x-death") or []  # dead-lettered by the broker (delivery limit, ...)
    first = deaths[-1] if deaths else {}
    keys = first.get("routing-keys") or [msg.routing_key]
    reason = f"{headers.get('x-first-death-reason', first.get('reason', '?'))} in {first.get('queue', '?')}"
    return str(first.get("exchange", "")), str(keys[0]), reason


def _queue_of(msg: aio_pika.abc.AbstractIncomingMessage) -> str:
    headers = msg.headers or {}
    if "x-helpdesk-queue" in headers:
        return str(headers["x-helpdesk-queue"])
    deaths = headers.get("x-death") or []
    return str(deaths[-1].get("queue", "")) if deaths else ""


async def _messages(channel: aio_pika.abc.AbstractChannel, limit: int) -> AsyncIterator[Any]:
    queue = await channel.declare_queue(DEAD_LETTER_QUEUE, passive=True)
    for _ in range(limit):
        msg = await queue.get(no_ack=False, fail=False)
        if msg is None:
            return
        yield msg


async def list_dead(amqp_url: str, limit: int) -> list[dict[str, Any]]:
    """Peek (messages are requeued, nothing is removed); bodies and reasons masked."""
    conn = await aio_pika.connect(amqp_url)
    async with conn:
        ch = await conn.channel()
        out, held = [], []
        async for msg in _messages(ch, limit):
            exchange, key, reason = origin(msg)
            out.append({"message_id": msg.message_id, "exchange": exchange, "routing_key": key,
                        "reason": mask_text(reason), "queue": _queue_of(msg),
                        "body": mask_body(msg.body).decode(errors="replace")[:200]})
            held.append(msg)
        for msg in held:
            await msg.nack(requeue=True)
    return out


async def replay(amqp_url: str, limit: int, queue: str | None = None) -> int:
    """Republish up to ``limit`` dead letters (only those from ``queue`` if given); returns the count."""
    conn = await aio_pika.connect(amqp_url)
    replayed = 0
    async with conn:
        ch = await conn.channel(publisher_confirms=True)
        skipped = []
        async for msg in _messages(ch, limit):
            if queue and _queue_of(msg) != queue:
                skipped.append(msg)
                continue
            exchange, key, _ = origin(msg)
            headers = {k: v for k, v in (msg.headers or {}).items() if k not in _OURS and not k.startswith("x-death")
                       and not k.startswith("x-first-death") and not k.startswith("x-last-death")}
            target = await ch.get_exchange(exchange) if exchange else ch.default_exchange
            await target.publish(aio_pika.Message(
                _replayable(msg.body), headers=headers, content_type=msg.content_type, message_id=msg.message_id,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                user_id=url_user(amqp_url)), routing_key=key)  # replayed as the operator's login (needs admin)
            await msg.ack()
            replayed += 1
        for msg in skipped:
            await msg.nack(requeue=True)
    return replayed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    ls = sub.add_parser("list")
    ls.add_argument("--limit", type=int, default=20)
    rp = sub.add_parser("replay")
    rp.add_argument("--limit", type=int, default=1000)
    rp.add_argument("--queue", help="only dead letters from this queue (e.g. intake.tickets)")
    a = p.parse_args()
    url = Settings().amqp_url
    if a.cmd == "list":
        for d in asyncio.run(list_dead(url, a.limit)):
            print(mask_text(f"{d['queue'] or '?':<22} {d['exchange']} {d['routing_key']}  {d['reason']}\n"
                            f"    {d['body']}"))
    else:
        print(f"replayed {asyncio.run(replay(url, a.limit, a.queue))} message(s)")


if __name__ == "__main__":
    main()
