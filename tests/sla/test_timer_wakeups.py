"""A change of SLA clocks wakes the timer loops with the moment the changed clocks next fire (the
NOTIFY's payload, epoch seconds), and a change that leaves nothing to fire wakes nobody; the loops
ignore a wake-up due after their own (``tests/unit/test_dueloop_payloads.py``)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg


async def test_clock_changes_say_when_they_fire(sla: Any, run_env: dict[str, str]) -> None:
    listener = await asyncpg.connect(run_env["DATABASE_URL"])
    got: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener("sla_timers", lambda _c, _p, _ch, payload: got.put_nowait(payload))
    no = f"20991231{uuid.uuid4().int % 10**8:08d}"
    fire = datetime.now(UTC) + timedelta(days=1)
    pool = sla.rt.pool

    async def next_payload() -> str | None:
        try:
            return await asyncio.wait_for(got.get(), 2)
        except TimeoutError:
            return None

    try:
        while not got.empty():
            got.get_nowait()
        await pool.execute(
            "INSERT INTO sla.clocks (ticket_no, metric, priority, policy, calendar, target_s, started_at, fire_at)"
            " VALUES ($1, 'resolution', 'P3', 'test', '24x7', 3600, now(), $2),"
            " ($1, 'first_response', 'P3', 'test', '24x7', 60, now(), $2 + interval '1 hour')", no, fire)
        assert abs(float(await next_payload() or "nan") - fire.timestamp()) < 0.01  # the earlier of the two
        await pool.execute("UPDATE sla.clocks SET fire_at = NULL WHERE ticket_no = $1", no)  # stopped: nothing to fire
        assert await next_payload() is None
        later = fire + timedelta(hours=5)
        await pool.execute("UPDATE sla.clocks SET fire_at = $2 WHERE ticket_no = $1 AND metric = 'resolution'", no, later)
        assert abs(float(await next_payload() or "nan") - later.timestamp()) < 0.01
    finally:
        await pool.execute("DELETE FROM sla.clocks WHERE ticket_no = $1", no)
        await listener.close()
