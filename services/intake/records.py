"""Intake's use cases for the service and complaint records (#14), called from ``usecases``:

* ``on_register`` — in the ticket's creating transaction: the new fields stored, the customer type
  (``returning`` when the customer's key had an earlier ticket) and the 三包 warranty check, returned
  as the extra fields of ``ticket.created``;
* ``decide`` — every command: the records commands (diagnose, schedule, verify, determine, revisit),
  the category rules and the complaint rule, and the records fields of the core events;
* ``view_fields`` — the records part of ``GET /v1/tickets/{no}`` (personal fields masked).
"""

from __future__ import annotations

import os
from datetime import datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import orjson

from services.intake import domain, records_domain, store, warranty
from shared.events import EventData
from shared.messages import Command, IntakeTicket

JSON_COLUMNS = ("diagnosis", "appointment", "verification", "determination", "revisit")


WARRANTY_FILE_ENV = "INTAKE_WARRANTY_FILE"  # default: the shipped 三包 policy, services/intake/warranty.toml


@cache
def _policy(path: str | None) -> warranty.WarrantyPolicy:
    return warranty.load(path)


def warranty_policy() -> warranty.WarrantyPolicy:
    """The warranty policy of ``INTAKE_WARRANTY_FILE``; a bad file raises ``WarrantyPolicyError``."""
    return _policy(os.environ.get(WARRANTY_FILE_ENV) or None)  # read per call (cheap); parsed once per file


async def on_register(conn: asyncpg.Connection, *, msg: IntakeTicket, received_at: datetime,
                      tz: ZoneInfo, customer_key: str | None,
                      returning: bool | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The new ticket's records fields, assessed before it is inserted: (its columns, for
    ``store.insert_ticket``; ``ticket.created``'s records fields: customer type, warranty).

    ``customer_key`` is the ticket's (privacy's ``domain.customer_key``): ``returning`` when an earlier
    ticket has the same key."""
    key = customer_key
    ctype = None
    if key:
        if returning is None:  # not read with the registration's other look-ups (store.prepare_registrations)
            returning = await store.has_earlier_ticket(conn, customer_key=key, received_at=received_at)
        ctype = "returning" if returning else "new"
    w = None
    if msg.purchase_date is not None:
        repairs = await store.failed_repairs(conn, customer_key=key, invoice_no=msg.invoice_no,
                                             product_model=msg.product_model, received_at=received_at)
        w = warranty.assess(warranty_policy(), purchase_date=msg.purchase_date,
                            on=max(received_at.astimezone(tz).date(), msg.purchase_date),
                            product=msg.product, model=msg.product_model, failed_repairs=repairs)
    columns = {"customer_type": ctype, "warranty": w.model_dump(mode="json") if w else None}
    return columns, {"product_model": msg.product_model, "purchase_date": msg.purchase_date, "invoice_no": msg.invoice_no,
            "service_type": msg.service_type, "expected_by": msg.expected_by, "customer_type": ctype,
            "warranty": w}


def check_intake(msg: IntakeTicket, *, received_at: datetime, tz: ZoneInfo) -> None:
    records_domain.check_fields(msg, received_at=received_at, today=datetime.now(tz).date())


async def decide(conn: asyncpg.Connection, action: str, ticket: asyncpg.Record, cmd: Command,
                 now: datetime) -> tuple[dict[str, Any], EventData]:
    """The changes and event of ``cmd`` (core or records action), with the records rules applied."""
    records_domain.check_allowed(action, ticket)
    if action in records_domain.RECORDS_ACTIONS:
        changes, event = records_domain.decide(action, ticket, cmd, now)
        return _encoded(changes), event
    if action == "resolve":
        determination = orjson.loads(ticket["determination"]) if ticket["determination"] else None
        records_domain.check_resolve(ticket, determination)
    late = False
    if action == "respond" and ticket["responses"] == 0:
        timeline = [{"type": r["type"], "data": orjson.loads(r["data"])}
                    for r in await store.timeline(conn, ticket_no=ticket["ticket_no"])]
        late = records_domain.first_response_late(timeline, now)
    changes, event = domain.decide(action, ticket, cmd, now)
    return records_domain.amend(cmd, ticket, changes, event, first_response_late=late)


def _encoded(changes: dict[str, Any]) -> dict[str, Any]:
    return {k: orjson.dumps(v).decode() if k in JSON_COLUMNS else v for k, v in changes.items()}


def view_fields(t: asyncpg.Record) -> dict[str, Any]:
    """The records part of the ticket view; the appointment's place is masked."""
    records = {k: orjson.loads(t[k]) if t[k] else None for k in JSON_COLUMNS}
    if records["appointment"]:
        records["appointment"]["place"] = records_domain.mask_place(records["appointment"]["place"])
    return {
        "product_model": t["product_model"], "purchase_date": t["purchase_date"], "invoice_no": t["invoice_no"],
        "service_type": t["service_type"], "expected_by": t["expected_by"], "customer_type": t["customer_type"],
        "warranty": orjson.loads(t["warranty"]) if t["warranty"] else None,
        "cause": t["cause"], "sub_item": t["sub_item"], **records,
    }
