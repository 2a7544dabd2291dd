"""A batch of registrations is looked up in one statement (``usecases.prepare``: each ticket's duplicate
check, next serial and customer history) and then registers exactly what one transaction each would: a
redelivery of a registered ticket and a duplicate inside the batch make no second ticket, a customer's
second ticket of the batch is ``returning``, and no registration asks the database on its own."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.intake import store, usecases
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
    # the batch's new tickets are written at its flush, all in one insert: their numbers are in its events
    assert [t for t, _ in results[1:]] == [None] * 4
    created = [e.ticket_no for e in tx.envelopes]
    assert len(created) == 3 and len(set(created)) == 3
    rows = {r["ticket_no"]: r for r in await rt.pool.fetch(
        "SELECT ticket_no, external_id, message_id, customer_type, customer_phone, status FROM intake.tickets"
        " WHERE ticket_no = ANY($1)", created)}
    assert [(rows[n]["external_id"], rows[n]["message_id"]) for n in created] == \
        [(f"{tag}-a", f"m-{tag}-1"), (f"{tag}-b", f"m-{tag}-3"), (None, None)]  # the in-batch duplicate made none
    assert [rows[n]["customer_type"] for n in created] == ["new", "returning", "returning"]
    assert [rows[n]["customer_phone"] for n in created] == [new, new, old] and {r["status"] for r in rows.values()} == {"new"}
    assert await rt.pool.fetchval("SELECT count(*) FROM intake.tickets WHERE external_id LIKE $1", f"{tag}-%") == 3
    # one look-up for the batch, the redelivery's read, one insert for the batch's three new tickets
    on_tickets = [s for s in counting.statements if s[1] == "tickets"]
    assert on_tickets.count(("SELECT", "tickets")) == 2, counting.statements  # the look-up, the redelivery read
    assert on_tickets.count(("INSERT", "tickets")) == 1, counting.statements  # the batch's insert (add_tickets)
    assert len(on_tickets) == 3, counting.statements


async def test_a_ticket_registered_meanwhile_sends_the_batch_alone(intake: Any) -> None:
    """A key taken after the batch looked (a replica registered the same ticket) fails the flush, so the batch
    rolls back (nothing of it stays) and each message, handled alone, finds the duplicate."""
    rt = intake.rt
    tag = uuid.uuid4().hex[:10]
    at = datetime.now(UTC) - timedelta(minutes=1)

    async def create(msg: IntakeTicket, message_id: str, tx: Any = None) -> tuple[Any, bool]:
        return await usecases.create_ticket(rt, tz=rt.settings.tz, msg=msg, caller="test", transport="amqp",
                                            key_secret=rt.settings.customer_key_secret, message_id=message_id,
                                            within=tx)

    batch = [(_msg(f"{tag}-x", "13800138000", at), f"m-{tag}-x"), (_msg(f"{tag}-y", "13800138001", at), f"m-{tag}-y")]
    with pytest.raises(store.RegisteredMeanwhile):
        async with rt.transaction(batch_ids=[m for _, m in batch]) as tx:
            await usecases.prepare(tx, batch, tz=rt.settings.tz, key_secret=rt.settings.customer_key_secret)
            await create(*batch[0], tx)
            await create(*batch[1], tx)
            mine, made = await create(_msg(f"{tag}-y", "13800138001", at), f"m-{tag}-other")  # its own transaction
            assert made
    rows = await rt.pool.fetch("SELECT ticket_no, external_id FROM intake.tickets WHERE external_id LIKE $1", f"{tag}-%")
    assert [(r["ticket_no"], r["external_id"]) for r in rows] == [(mine["ticket_no"], f"{tag}-y")]  # x rolled back
    alone = [await create(msg, mid) for msg, mid in batch]
    assert [made for _, made in alone] == [True, False]
    assert alone[1][0]["ticket_no"] == mine["ticket_no"]
