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


async def test_a_lookup_issues_every_progress_link_in_one_statement_and_keeps_each(intake):
    """The links of a lookup's tickets are made (or found) in one statement, whatever their number; a ticket
    keeps the link it had (the single contact read's, an earlier lookup's) and a new one gets its own."""
    from services.intake import progress, progress_store
    from tests.support import Counting

    made = [(await intake.client.post("/v1/tickets", json=ticket(customer={
        "name": "李雷", "phone": f"1381234{i:04d}", "tier": "standard"}))).json()["ticket_no"] for i in range(3)]
    key = {"X-API-Key": "notify-secret"}
    linked = (await intake.client.get(f"/v1/tickets/{made[0]}/contact", headers=key)).json()["progress_url"]
    first = (await intake.client.post("/v1/contacts:lookup", json={"ticket_nos": made}, headers=key)).json()
    urls = {no: c["progress_url"] for no, c in first["contacts"].items()}
    assert urls[made[0]] == linked and len(set(urls.values())) == 3
    again = (await intake.client.post("/v1/contacts:lookup", json={"ticket_nos": made[::-1]}, headers=key)).json()
    assert {no: c["progress_url"] for no, c in again["contacts"].items()} == urls
    for no, url in urls.items():  # each link opens its own ticket's page
        assert await progress._ticket_no(intake.rt.pool, url.rsplit("/", 1)[1]) == no

    rt = intake.rt
    async with rt.pool.acquire() as conn:
        counting = Counting(conn, "intake")
        salts = await progress_store.add_links(counting, [(no, b"s" * 16, no.encode()) for no in made])
        fresh = (await intake.client.post("/v1/tickets", json=ticket())).json()["ticket_no"]
        got = await progress_store.add_links(counting, [(fresh, b"f" * 16, b"hash-" + fresh.encode()),
                                                        (made[1], b"x" * 16, b"other")])
    assert counting.statements == [("WITH", "progress_links")] * 2  # one statement a call, however many links
    assert all(s != b"s" * 16 for s in salts.values())  # they all had links: the stored salts come back
    assert got == {fresh: b"f" * 16, made[1]: salts[made[1]]}
