"""Who a delivery goes to: a customer's contact from intake (internal endpoint), staff from config.

Intake alone stores customers' real phone numbers and emails; notification asks for them just
before a send and keeps them only in memory for that send (never in its schema, events or logs).
"""

from __future__ import annotations

import httpx

from services.notification.config import RulesConfig
from services.notification.domain import CUSTOMER, DeliveryError, Recipient, http_failure, staff


class IntakeContacts:
    """``GET {intake}/v1/tickets/{no}/contact`` with ``X-API-Key``."""

    def __init__(self, base_url: str, api_key: str, *, transport: httpx.AsyncBaseTransport | None = None,
                 timeout_s: float = 5.0) -> None:
        self.client = httpx.AsyncClient(base_url=base_url, transport=transport, timeout=timeout_s,
                                        headers={"X-API-Key": api_key})

    async def close(self) -> None:
        await self.client.aclose()

    async def customer(self, ticket_no: str) -> Recipient:
        try:
            r = await self.client.get(f"/v1/tickets/{ticket_no}/contact")
        except httpx.HTTPError as exc:
            raise DeliveryError(f"intake unreachable: {type(exc).__name__}") from None
        if r.status_code == 404:
            raise DeliveryError(f"intake knows no ticket {ticket_no}", permanent=True)
        if r.status_code != 200:
            err = http_failure(r.status_code, "contact lookup")
            raise DeliveryError(f"intake contact: {err.reason}", permanent=False) from None
        c = r.json()
        # progress_url: the customer's progress page (a credential: only ever in the message itself)
        return Recipient(key=CUSTOMER, name=c.get("name"), language=c.get("language"), phone=c.get("phone"),
                         email=c.get("email"), extra={"progress_url": c.get("progress_url")})


async def resolve(recipient: str, *, ticket_no: str | None, cfg: RulesConfig, intake: IntakeContacts) -> Recipient:
    """The delivery's recipient with its addresses (customer: from intake; staff: from the rules file)."""
    if recipient == CUSTOMER:
        if not ticket_no:
            raise DeliveryError("customer message without a ticket", permanent=True)
        return await intake.customer(ticket_no)
    sid = recipient.removeprefix("staff:")
    person = staff(cfg, sid)
    return Recipient(key=recipient, name=person.name or sid, language=person.language, phone=person.phone,
                     email=person.email)
