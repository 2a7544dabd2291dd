"""Two routing replicas consuming the same queues never assign a ticket twice nor exceed a cap."""

from __future__ import annotations

import asyncio
import subprocess
from collections import Counter

from shared.settings import Settings
from tests.conftest import start_service
from tests.routing.conftest import created, event, new_ticket_no, send, slate

AGENTS = [{"id": f"r-{i}", "department": "technical", "capacity": 2} for i in range(3)]


def consumers(vhost: str, queue: str) -> int:
    out = subprocess.run(["rabbitmqctl", "-q", "list_consumers", "-p", vhost, "queue_name"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return sum(1 for line in out.splitlines() if line.strip() == queue)


async def test_two_replicas_share_the_queue_without_double_assignment(routing, run_env, publisher, tap,
                                                                     monkeypatch):
    from services.routing.usecases import assign
    from services.routing.app import create_app

    handled: Counter[int] = Counter()
    real = assign.route_created

    async def spy(rt, rules, ev, *, within=None):  # noqa: ANN001  (which replica handled it)
        handled[id(rt)] += 1
        await real(rt, rules, ev, within=within)

    monkeypatch.setattr(assign, "route_created", spy)
    await slate(routing, AGENTS)
    gen = start_service(create_app, Settings())
    second = await gen.__anext__()
    try:
        assert consumers(run_env["AMQP_URL"].rsplit("/", 1)[1], "routing.tickets") >= 2
        nos = [new_ticket_no() for _ in range(40)]
        await asyncio.gather(*(send(publisher, created(no, subject="设备故障", description="报错"))
                               for no in nos))
        first = await tap.wait_events(lambda e: e.type == "ticket.routed" and e.subject in nos, count=40)
        assert Counter(e.subject for e in first) == Counter(nos)  # one decision per ticket, not two
        assert handled[id(routing.rt)] > 0 and handled[id(second.rt)] > 0  # both replicas worked
        held = [e for e in first if e.data["state"] == "assigned"]
        assert len(held) == 6 and set(Counter(e.data["assignee"] for e in held).values()) == {2}

        # every holder resolves at once, through both replicas: six slots free, the six oldest fill them
        async with routing.rt.pool.acquire() as conn:
            queued = [r["ticket_no"] for r in await conn.fetch(
                "SELECT ticket_no FROM routing.tickets WHERE state = 'queued' AND ticket_no = ANY($1)"
                " ORDER BY queued_at, ticket_no", nos)]
        await asyncio.gather(*(send(publisher, event("ticket.resolved", e.subject)) for e in held))
        moved = await tap.wait_events(lambda e: e.type == "ticket.routed" and e.data.get("reason") == "dequeued"
                                      and e.subject in nos, count=6)
        await asyncio.sleep(0.5)  # anything extra would show up now
        moved = tap.events(lambda e: e.type == "ticket.routed" and e.data.get("reason") == "dequeued"
                           and e.subject in nos)
        assert sorted(e.subject for e in moved) == sorted(queued[:6])
        async with routing.rt.pool.acquire() as conn:
            agents = await conn.fetch("SELECT id, load, capacity FROM routing.agents")
            twice = await conn.fetchval(
                "SELECT count(*) FROM (SELECT ticket_no FROM routing.assignments WHERE agent IS NOT NULL"
                " AND action IN ('created', 'dequeued') AND ticket_no = ANY($1)"
                " GROUP BY ticket_no HAVING count(*) > 1) x", nos)
            holding = await conn.fetch(
                "SELECT assignee, count(*) AS n FROM routing.tickets WHERE state = 'assigned' GROUP BY 1")
        assert twice == 0
        assert all(a["load"] == a["capacity"] == 2 for a in agents)
        assert {r["assignee"]: r["n"] for r in holding} == {a["id"]: a["load"] for a in agents}
    finally:
        await gen.aclose()
