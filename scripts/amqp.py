"""Shell tools for the broker: publish a JSON message, or watch events on a queue of your own.

    python -m scripts.amqp publish helpdesk.intake intake.phone '{"channel": "phone", ...}'
    echo '{...}' | python -m scripts.amqp publish helpdesk.intake intake.web -
    python -m scripts.amqp tail 'ticket.*' [--count 1] [--timeout 30]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid

import aio_pika
import orjson

from shared.settings import Settings
from shared.trust import url_user


async def publish(exchange: str, key: str, body: str) -> None:
    raw = sys.stdin.buffer.read() if body == "-" else body.encode()
    orjson.loads(raw)  # refuse what is not JSON before it reaches the broker
    conn = await aio_pika.connect(Settings().amqp_url)
    async with conn:
        ch = await conn.channel(publisher_confirms=True, on_return_raises=True)
        ex = await ch.get_exchange(exchange)
        await ex.publish(aio_pika.Message(raw, content_type="application/json", message_id=uuid.uuid4().hex,
                                          delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                          user_id=url_user(Settings().amqp_url)), routing_key=key)
    print(f"published to {exchange} with routing key {key} (confirmed)")


async def tail(pattern: str, count: int, timeout: float) -> None:
    conn = await aio_pika.connect(Settings().amqp_url)
    async with conn:
        ch = await conn.channel()
        queue = await ch.declare_queue(f"tail.{uuid.uuid4().hex[:8]}", exclusive=True, auto_delete=True)
        await queue.bind("helpdesk.events", routing_key=pattern)
        print(f"listening on helpdesk.events for {pattern!r} ...", file=sys.stderr, flush=True)
        seen = 0
        async with queue.iterator(timeout=timeout) as it:
            async for msg in it:
                async with msg.process():
                    print(orjson.dumps(orjson.loads(msg.body), option=orjson.OPT_INDENT_2).decode(), flush=True)
                seen += 1
                if count and seen >= count:
                    break


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    pub = sub.add_parser("publish")
    pub.add_argument("exchange")
    pub.add_argument("routing_key")
    pub.add_argument("body", help="JSON, or - for standard input")
    t = sub.add_parser("tail")
    t.add_argument("pattern", nargs="?", default="#")
    t.add_argument("--count", type=int, default=0, help="stop after N events (0: run until Ctrl-C)")
    t.add_argument("--timeout", type=float, default=None, help="give up after N seconds without an event")
    a = p.parse_args()
    try:
        if a.cmd == "publish":
            asyncio.run(publish(a.exchange, a.routing_key, a.body))
        else:
            asyncio.run(tail(a.pattern, a.count, a.timeout))
    except (KeyboardInterrupt, TimeoutError, asyncio.TimeoutError):
        pass


if __name__ == "__main__":
    main()
