"""Every route of every service × every role (and no key) -> the expected status, on the real stack.

A refused call is 401 without a valid key, 403 naming the role needed; an allowed one gets the
route's own answer (the status each request below expects when the caller may make it).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from shared.messages import COMMANDS
from tests.security.conftest import KEYS, client
from tests.security.roles import COMMAND_ROLES, ROLES, TABLE, allowed

CALLERS = (None, *ROLES)
NO_TICKET = "20990101999999"


def _ticket(**over: Any) -> dict[str, Any]:
    return {"channel": "web", "external_id": f"sec-{uuid.uuid4().hex}", "subject": "无法开机",
            "customer": {"name": "王芳", "phone": "13812345678", "email": "wf@example.com"}, **over}


@pytest.fixture(scope="module")
async def own_ticket(services) -> str:  # noqa: ANN001
    """A ticket created by the channel key (``gw``), which that key may read."""
    async with client(services["intake"], "channel") as c:
        r = await c.post("/v1/tickets", json=_ticket())
    assert r.status_code == 201, r.text
    return r.json()["ticket_no"]


def request_for(key: tuple[str, str, str], ticket_no: str) -> tuple[str, dict[str, Any], int]:
    """(concrete path, httpx kwargs, status when allowed) for a route of the table."""
    svc, method, path = key
    specs: dict[tuple[str, str, str], tuple[str, dict[str, Any], int]] = {
        ("intake", "POST", "/v1/tickets"): ("/v1/tickets", {"json": _ticket()}, 201),
        ("intake", "GET", "/v1/tickets/{ticket_no}"): (f"/v1/tickets/{ticket_no}", {}, 200),
        ("intake", "GET", "/v1/tickets/{ticket_no}/contact"): (f"/v1/tickets/{ticket_no}/contact", {}, 200),
        ("intake", "POST", "/v1/contacts:lookup"): ("/v1/contacts:lookup", {"json": {"ticket_nos": [ticket_no]}}, 200),
        ("routing", "GET", "/v1/roster"): ("/v1/roster", {}, 200),
        ("routing", "PUT", "/v1/roster"): ("/v1/roster", {"json": {}}, 422),
        ("routing", "GET", "/v1/agents/{agent_id}"): ("/v1/agents/nobody-here", {}, 404),
        ("routing", "PATCH", "/v1/agents/{agent_id}"): ("/v1/agents/nobody-here", {"json": {}}, 422),
        ("routing", "GET", "/v1/queue"): ("/v1/queue", {}, 200),
        ("routing", "GET", "/v1/assignments/{ticket_no}"): (f"/v1/assignments/{NO_TICKET}", {}, 404),
        ("routing", "GET", "/v1/rules"): ("/v1/rules", {}, 200),
        ("sla", "GET", "/v1/sla/{ticket_no}"): (f"/v1/sla/{NO_TICKET}", {}, 404),
        ("notification", "GET", "/v1/deliveries"): ("/v1/deliveries", {"params": {"ticket_no": ticket_no}}, 200),
        ("survey", "GET", "/v1/surveys"): ("/v1/surveys", {"params": {"ticket_no": ticket_no}}, 200),
        ("survey", "GET", "/s/{token}"): ("/s/" + "x" * 32, {}, 404),
        ("survey", "POST", "/s/{token}"): ("/s/" + "x" * 32, {"json": {}}, 404),
        ("survey", "GET", "/s/{token}/thanks"): ("/s/" + "x" * 32 + "/thanks", {}, 303),
        ("intake", "GET", "/t/{token}"): ("/t/" + "x" * 32, {}, 404),
        ("intake", "POST", "/t/{token}/reply"): ("/t/" + "x" * 32 + "/reply", {"json": {"text": "还没修好"}}, 404),
        ("intake", "POST", "/t/{token}/callback"): ("/t/" + "x" * 32 + "/callback", {"json": {}}, 404),
        ("intake", "POST", "/t/{token}/confirm"): ("/t/" + "x" * 32 + "/confirm", {"json": {"solved": "yes"}}, 404),
        ("review", "GET", "/v1/reviews/actions"): ("/v1/reviews/actions", {}, 200),
        ("review", "POST", "/v1/reviews/actions"): ("/v1/reviews/actions", {"json": {}}, 422),
        ("review", "PATCH", "/v1/reviews/actions/{action_id}"):
            (f"/v1/reviews/actions/{uuid.UUID(int=1)}", {"json": {"owner": "王经理"}}, 404),
        ("review", "GET", "/v1/reviews/{period}"): ("/v1/reviews/2026-01", {}, 200),
        ("review", "GET", "/v1/reviews/{period}/tickets"): ("/v1/reviews/2026-01/tickets", {}, 200),
        ("review", "POST", "/v1/reviews/{period}/snapshot"): ("/v1/reviews/2999-01/snapshot", {}, 422),
        ("review", "GET", "/reviews/{period}"): ("/reviews/2026-01", {}, 200),
        ("intake", "POST", "/v1/customers/key"): ("/v1/customers/key", {"json": {}}, 422),
        ("intake", "POST", "/v1/customers/{customer_key}/erase"): (f"/v1/customers/{'0' * 63}/erase", {}, 422),
        ("intake", "GET", "/v1/customers/{customer_key}/export"): (f"/v1/customers/{'0' * 63}/export", {}, 422),
        ("notification", "GET", "/v1/customers/{customer_key}/export"):
            (f"/v1/customers/{'0' * 63}/export", {}, 422),
        ("survey", "GET", "/v1/customers/{customer_key}/export"): (f"/v1/customers/{'0' * 63}/export", {}, 422),
        **{("intake", "POST", f"/v1/tickets/{{ticket_no}}/{a}"): (f"/v1/tickets/{NO_TICKET}/{a}", {"json": {}}, 422)
           for a in COMMANDS},
        ("*", "GET", "/healthz"): ("/healthz", {}, 200),
        ("*", "GET", "/metrics"): ("/metrics", {}, 200),
    }
    return specs.get(key) or specs[("*", method, path)]


def routes_of(app) -> set[tuple[str, str]]:  # noqa: ANN001
    """Every (method, path) the service's OpenAPI document lists (every route it serves is listed)."""
    return {(m.upper(), p) for p, ops in app.openapi()["paths"].items() for m in ops if m != "parameters"}


COMMAND_ROUTE = ("intake", "POST", "/v1/tickets/{ticket_no}/{action}")


def test_table_covers_every_route(services) -> None:  # noqa: ANN001
    discovered = {(svc, m, p) for svc, r in services.items() for m, p in routes_of(r.app)}
    assert discovered == set(TABLE), "give every route its roles in tests/security/roles.py"
    assert COMMAND_ROUTE not in discovered and set(COMMANDS) == set(COMMAND_ROLES)  # one path per command


async def test_every_route_every_role(services, own_ticket) -> None:  # noqa: ANN001
    failures, cases = [], 0
    for key, roles in sorted(TABLE.items(), key=lambda kv: kv[0]):
        for role in CALLERS:
            path, kwargs, ok = request_for(key, own_ticket)
            async with client(services[key[0]], role) as c:
                r = await c.request(key[1], path, **kwargs)
            expected = ok if allowed(roles, role) else 401 if role is None else 403
            cases += 1
            if r.status_code != expected:
                failures.append(f"{key} as {role}: {r.status_code} (expected {expected}) {r.text[:200]}")
            elif expected == 403:
                problem = r.json()["errors"][0]["problem"]
                if not any(f"role {x}" in problem or f" {x}" in problem for x in roles or ()):
                    failures.append(f"{key} as {role}: 403 does not name a role needed: {problem}")
    assert not failures, "\n".join(failures)
    print(f"routes x roles: {len(TABLE)} routes x {len(CALLERS)} callers = {cases} cases")


async def test_every_command_every_role(services) -> None:  # noqa: ANN001
    """Allowed callers reach the command (an empty body is a 422 naming ``actor``); others are refused."""
    failures = []
    for action, roles in sorted(COMMAND_ROLES.items()):
        for role in CALLERS:
            async with client(services["intake"], role) as c:
                r = await c.post(f"/v1/tickets/{NO_TICKET}/{action}", json={})
            expected = 422 if allowed(roles, role) else 401 if role is None else 403
            if r.status_code != expected:
                failures.append(f"{action} as {role}: {r.status_code} (expected {expected}) {r.text[:200]}")
            elif expected == 403 and "supervisor" in roles:
                assert "supervisor" in r.json()["errors"][0]["problem"]
    assert not failures, "\n".join(failures)


async def test_channel_key_reads_only_its_own_tickets(services, own_ticket) -> None:  # noqa: ANN001
    async with client(services["intake"], "admin") as c:
        r = await c.post("/v1/tickets", json=_ticket())
        theirs = r.json()["ticket_no"]
    async with client(services["intake"], "channel") as c:
        assert (await c.get(f"/v1/tickets/{own_ticket}")).status_code == 200
        r = await c.get(f"/v1/tickets/{theirs}")
        assert r.status_code == 404 and r.json()["errors"][0]["field"] == "ticket_no"
    async with client(services["intake"], "agent") as c:
        assert (await c.get(f"/v1/tickets/{theirs}")).status_code == 200


async def test_wrong_key_is_401_and_names_the_header(services) -> None:  # noqa: ANN001
    for svc in services.values():
        async with client(svc, None) as c:
            r = await c.get("/v1/roster", headers={"X-API-Key": KEYS["admin"] + "x"})
            assert r.status_code in (401, 404)
            if r.status_code == 401:
                assert r.json()["errors"][0]["field"] == "X-API-Key"
