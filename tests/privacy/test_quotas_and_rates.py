"""Per-key ticket-creation quotas on HTTP (429 with Retry-After, shared by replicas), and the
notification rate limit keyed on the customer's hashed normalised phone: new tickets don't reset it."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime

import pytest

from services.intake import privacy
from shared.customers import customer_key
from shared.errors import TooManyRequests
from shared.quota import Quota, parse_quotas
from shared.settings import Settings
from tests.conftest import API_KEY, start_service
from tests.notification.helpers import wait_rows


def test_quota_syntax():
    q = parse_quotas("3000/60,wechat-gw=20000/60,batch=0,slow=5/3600s")
    assert q.for_caller("anyone") == Quota(3000, 60.0) and q.for_caller("wechat-gw") == Quota(20000, 60.0)
    assert q.for_caller("batch").limit == 0 and q.for_caller("slow") == Quota(5, 3600.0)
    assert parse_quotas("").default.limit == 0  # unset: unlimited
    with pytest.raises(ValueError, match="'lots'"):
        parse_quotas("lots")
    with pytest.raises(ValueError):
        Settings(HELPDESK_TICKET_QUOTA="x=1/0")
    start, left = Quota(10, 60).window(datetime(2026, 12, 1, 22, 0, 45, tzinfo=UTC))
    assert start == datetime(2026, 12, 1, 22, 0, tzinfo=UTC) and left == 15


async def test_quota_counts_in_the_database_with_a_clock(intake):
    caller, quotas = f"q-{uuid.uuid4().hex[:8]}", parse_quotas("3/60")
    now = datetime(2030, 1, 1, 0, 0, 10, tzinfo=UTC)
    for _ in range(3):
        await privacy.use_ticket_quota(intake.rt.pool, caller=caller, quotas=quotas, now=now)
    with pytest.raises(TooManyRequests) as refused:
        await privacy.use_ticket_quota(intake.rt.pool, caller=caller, quotas=quotas, now=now)
    assert refused.value.headers == {"Retry-After": "50"} and refused.value.field == "X-API-Key"
    later = datetime(2030, 1, 1, 0, 1, 0, tzinfo=UTC)  # the next window
    await privacy.use_ticket_quota(intake.rt.pool, caller=caller, quotas=quotas, now=later)


async def test_http_quota_is_429_with_retry_after_and_other_keys_go_on(intake):
    from services.intake.app import create_app

    name, secret = f"quota-gw-{uuid.uuid4().hex[:6]}", f"quota-{uuid.uuid4().hex}"
    settings = Settings(HELPDESK_API_KEYS=os.environ["HELPDESK_API_KEYS"] + f",{name}:{secret}:channel",
                        HELPDESK_TICKET_QUOTA=f"0,{name}=2/3600")
    body = {"channel": "web", "customer": {"name": "x"}, "subject": "quota"}
    limited = {"X-API-Key": secret}
    first, second = start_service(create_app, settings), start_service(create_app, settings)
    a, b = await first.__anext__(), await second.__anext__()
    try:
        codes = [(await a.client.post("/v1/tickets", json=body, headers=limited)).status_code for _ in range(2)]
        assert codes == [201, 201]
        r = await b.client.post("/v1/tickets", json=body, headers=limited)  # the other replica counts the same window
        assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 3600
        assert r.json()["errors"][0]["field"] == "X-API-Key" and name in r.json()["errors"][0]["problem"]
        assert (await a.client.post("/v1/tickets", json=body, headers=limited)).status_code == 429
        assert (await a.client.post("/v1/tickets", json=body, headers={"X-API-Key": API_KEY})).status_code == 201
    finally:
        await second.aclose()
        await first.aclose()


async def test_rate_limit_follows_the_customer_across_tickets(intake, notification, peers):
    worker = notification.app.state.worker
    original = worker.cfg
    worker.cfg = original.model_copy(update={"rate_limit": original.rate_limit.model_copy(update={"customer": 3})})
    digits = f"{uuid.uuid4().int % 10**8:08d}"
    national = f"137{digits}"
    spellings = [national, f"137 {digits[:4]} {digits[4:]}", f"+86 137-{digits[:4]}-{digits[4:]}",
                 f"0086{national}", national, f"(+86) {national}"]
    try:
        numbers = []
        for spelling in spellings:  # six tickets, no customer.id: the old rate key was each ticket
            r = await intake.client.post("/v1/tickets", json={
                "channel": "web", "customer": {"name": "李雷", "phone": spelling}, "subject": "催单"})
            assert r.status_code == 201, r.text
            numbers.append(r.json()["ticket_no"])
        key = customer_key(secret=Settings().customer_key_secret, phone=national)
        rows = []
        for no in numbers:
            rows += await wait_rows(notification, no, lambda rs: rs and (rs[0]["status"] == "sent" or rs[0]["held"]))
        assert {r["rate_key"] for r in rows} == {f"customer:{key}"}
        assert sum(r["status"] == "sent" for r in rows) == 3
        assert sum(r["held"] == "rate_limit" for r in rows) == 3
    finally:
        worker.cfg = original
