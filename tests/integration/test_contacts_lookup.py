"""``POST /v1/contacts:lookup``: a batch of deliveries' customers in one call (role ``contacts``), and
notification's worker using it — one look-up per pass instead of one HTTP call per send."""

from __future__ import annotations

from tests.integration.test_intake_create import ticket


async def test_lookup_gives_many_contacts_at_once_and_names_the_unknown(intake):
    a = (await intake.client.post("/v1/tickets", json=ticket())).json()["ticket_no"]
    b = (await intake.client.post("/v1/tickets", json=ticket(customer={"name": "韩梅梅", "phone": "13900001111",
                                                                       "tier": "standard"}))).json()["ticket_no"]
    unknown = "20200101999999"
    r = await intake.client.post("/v1/contacts:lookup", json={"ticket_nos": [a, b, a, unknown]},
                                 headers={"X-API-Key": "notify-secret"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body["contacts"]) == {a, b} and body["unknown"] == [unknown]
    assert body["contacts"][a]["phone"] == "13812345678" and body["contacts"][a]["email"] == "lilei@example.com"
    assert body["contacts"][b]["name"] == "韩梅梅" and "/t/" in body["contacts"][b]["progress_url"]
    single = (await intake.client.get(f"/v1/tickets/{b}/contact", headers={"X-API-Key": "notify-secret"})).json()
    assert {k: single[k] for k in ("name", "phone", "email", "language", "tier", "channel")} == \
        {k: body["contacts"][b][k] for k in ("name", "phone", "email", "language", "tier", "channel")}


async def test_lookup_needs_the_contacts_role_and_names_bad_fields(intake):
    r = await intake.client.post("/v1/contacts:lookup", json={"ticket_nos": ["20200101000001"]},
                                 headers={"X-API-Key": "agent-secret"})
    assert r.status_code == 403 and "contacts" in r.text
    for bad, field in (({"ticket_nos": []}, "ticket_nos"), ({"ticket_nos": ["nope"]}, "ticket_nos.0"),
                       ({"ticket_nos": ["20200101000001"] * 501}, "ticket_nos"), ({}, "ticket_nos")):
        r = await intake.client.post("/v1/contacts:lookup", json=bad, headers={"X-API-Key": "notify-secret"})
        assert r.status_code == 422 and r.json()["errors"][0]["field"].endswith(field), (bad, r.text)
