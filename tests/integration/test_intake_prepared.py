"""A batch of registrations is looked up in one statement (``usecases.prepare``: each ticket's duplicate
check, next serial and customer history) and then registers exactly what one transaction each would: a
redelivery of a registered ticket and a duplicate inside the batch make no second ticket, a customer's
second ticket of the batch is ``returning``, and no registration asks the database on its own."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.intake import usecases
from shared.messages import IntakeTicket
from tests.support import Counting

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _msg(ext: str | None, phone: str, at: datetime) -> IntakeTicket:
    return IntakeTicket.model_validate({
        "channel": "web", "external_id": ext, "customer": {"name": "李雷", "phone": phone},
        "subject": "设备无法启动", "description": "按电源键没有反应", "received_at": at.isoformat()})


async def test_a_prepared_batch_registers_what_one_transaction_each_does(intake: Any) -> None:
    rt = intake.rt
    tag = uuid.uuid4().hex[:10]
    old, new = "139" + str(uuid.uuid4().int)[:8], "137" + str(uuid.uuid4().int)[:8]
    t0 = datetime.now(UTC) - timedelta(minutes=5)

    async def create(msg: IntakeTicket, message_id: str, tx: Any = None) -> tuple[Any, bool]:
        return await usecases.create_ticket(rt, tz=rt.settings.tz, msg=msg, caller="test", transport="amqp",
                                            key_secret=rt.settings.customer_key_secret, message_id=message_id,
                                            within=tx)

    known, made = await create(_msg(f"{tag}-known", old, t0), f"m-{tag}-0")  # registered before the batch
    assert made
    batch = [
        (_msg(f"{tag}-known", old, t0), f"m-{tag}-0"),  # a redelivery of it
        (_msg(f"{tag}-a", new, t0 + timedelta(minutes=1)), f"m-{tag}-1"),  # a new customer's first ticket
        (_msg(f"{tag}-a", new, t0 + timedelta(minutes=1)), f"m-{tag}-2"),  # the same ticket again, same batch
        (_msg(f"{tag}-b", new, t0 + timedelta(minutes=2)), f"m-{tag}-3"),  # that customer's second ticket
        (_msg(None, old, t0 + timedelta(minutes=3)), None),  # no idempotency key: always a new ticket
    ]
    async with rt.transaction(batch_ids=[m for _, m in batch]) as tx:
        tx.conn = counting = Counting(tx.conn, "intake")
        await usecases.prepare(tx, batch, tz=rt.settings.tz, key_secret=rt.settings.customer_key_secret)
        results = [await create(msg, mid, tx) for msg, mid in batch]

    assert [made for _, made in results] == [False, True, False, True, True]
    assert results[0][0]["ticket_no"] == known["ticket_no"]
    assert results[2][0]["ticket_no"] == results[1][0]["ticket_no"]
    types = {r["ticket_no"]: r["customer_type"] for r in await rt.pool.fetch(
        "SELECT ticket_no, customer_type FROM intake.tickets WHERE ticket_no = ANY($1)",
        [t["ticket_no"] for t, _ in results])}
    assert [types[t["ticket_no"]] for t, _ in results] == ["new", "new", "new", "returning", "returning"]
    # one look-up for the batch (WITH/SELECT), one insert a registration tried, the duplicate's read
    on_tickets = [s for s in counting.statements if s[1] == "tickets"]
    assert on_tickets.count(("SELECT", "tickets")) == 3, counting.statements  # the look-up, two duplicates read
    assert on_tickets.count(("INSERT", "tickets")) == 4, counting.statements  # the in-batch duplicate tried too
    assert len(on_tickets) == 7, counting.statements
