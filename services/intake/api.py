"""Intake's HTTP API: ``/v1/tickets`` (API key required on every call)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Body, Depends, Header, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from starlette.exceptions import HTTPException

from services.intake import privacy, progress, usecases
from shared.auth import Principal, command_roles, ensure, principal, require
from shared.customers import customer_key
from shared.errors import DomainError, NotFound
from shared.http import error_body
from shared.messages import COMMANDS, TICKET_NO_PATTERN, Email, IntakeTicket, Phone, ShortText
from shared.openapi import REF, allowed_methods, errors, model_schema
from shared.runtime import Runtime


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


router = APIRouter(prefix="/v1/tickets", tags=["tickets"])
contacts_router = APIRouter(prefix="/v1", tags=["tickets"])
COMMAND_PATH = "/v1/tickets/{ticket_no}/{action}"


Channel = Annotated[Principal, Depends(require("channel"))]
Reader = Annotated[Principal, Depends(require("channel", "agent", "analyst"))]
Contacts = Annotated[Principal, Depends(require("contacts"))]


async def _commander(action: str, who: Annotated[Principal, Depends(principal)]) -> Principal:
    return ensure(who, *command_roles(action))

Commander = Annotated[Principal, Depends(_commander)]


def _check_no(ticket_no: str) -> None:
    if not re.fullmatch(TICKET_NO_PATTERN, ticket_no):
        raise NotFound("ticket_no", f"{ticket_no!r} is not a ticket number (YYYYMMDD + serial)")


@router.post("", status_code=201, summary="Register a ticket (idempotent on channel + external_id)",
             responses={200: {"description": "Already registered (same external_id or Idempotency-Key)"}})
async def create(
    request: Request, response: Response, body: IntakeTicket, who: Channel,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> dict[str, Any]:
    """201 with the new ticket number; 200 with the existing one for a repeated ``external_id``
    (or ``Idempotency-Key`` header)."""
    rt = _runtime(request)
    await privacy.use_ticket_quota(rt.pool, caller=who.name, quotas=rt.settings.ticket_quotas, now=datetime.now(UTC))
    ticket, created = await usecases.create_ticket(rt, tz=rt.settings.tz, msg=body, caller=who.name,
                                                   transport="http", message_id=idempotency_key,
                                                   key_secret=rt.settings.customer_key_secret)
    assert ticket is not None  # noqa: S101 - only a prepared batch stages its rows (an HTTP call has none)
    if not created:
        response.status_code = 200
    return {"ticket_no": ticket["ticket_no"], "status": ticket["status"], "created": created,
            "received_at": ticket["received_at"]}


@router.get("/{ticket_no}", summary="A ticket: status, assignment, SLA state and its whole timeline")
async def get_ticket(request: Request, ticket_no: str, who: Reader) -> dict[str, Any]:
    """A channel's key sees only the tickets it created (others are 404 to it)."""
    _check_no(ticket_no)
    return await usecases.view(_runtime(request).pool, ticket_no=ticket_no,
                              created_by=who.name if who.channel_only else None)


@router.get("/{ticket_no}/contact", summary="The customer's unmasked contact (internal: notification)",
            responses=errors(429))
async def get_contact(request: Request, ticket_no: str, who: Contacts) -> dict[str, Any]:
    """Every read is recorded (caller, ticket, time) and counted; a key is limited to
    ``HELPDESK_CONTACT_READS_PER_MINUTE`` reads a minute (429 beyond)."""
    _check_no(ticket_no)
    rt = _runtime(request)
    found = await usecases.contact(rt.pool, ticket_no=ticket_no, caller=who.name,
                                   per_minute=rt.settings.contact_reads_per_minute)
    # the progress link is a credential: it goes to the one who messages the customer, never into an event
    found["progress_url"] = await progress.issue_link(rt.pool, request.app.state.progress, ticket_no=ticket_no)
    return found


class ContactLookup(BaseModel):
    """The tickets whose customers a batch of deliveries goes to."""

    model_config = ConfigDict(extra="forbid")
    ticket_nos: list[Annotated[str, StringConstraints(pattern=TICKET_NO_PATTERN)]] = Field(min_length=1,
                                                                                          max_length=500)


@contacts_router.post("/contacts:lookup", summary="Many tickets' unmasked customer contacts in one call "
                      "(internal: notification, for a batch of deliveries)", responses=errors(429))
async def lookup_contacts(request: Request, body: ContactLookup, who: Contacts) -> dict[str, Any]:
    """``{"contacts": {ticket_no: contact}, "unknown": [ticket_no, ...]}``; each contact as
    ``GET /v1/tickets/{no}/contact`` gives it, progress link included. Nothing is stored by the caller.
    Every ticket read is recorded and counts towards the key's ``HELPDESK_CONTACT_READS_PER_MINUTE``."""
    rt = _runtime(request)
    wanted = list(dict.fromkeys(body.ticket_nos))
    found = await usecases.contacts(rt.pool, ticket_nos=wanted, caller=who.name,
                                    per_minute=rt.settings.contact_reads_per_minute)
    urls = await progress.issue_links(rt.pool, request.app.state.progress, ticket_nos=list(found))
    for no, c in found.items():
        c["progress_url"] = urls[no]
    return {"contacts": found, "unknown": [no for no in wanted if no not in found]}


@router.post("/{ticket_no}/{action}", summary="A lifecycle command: " + ", ".join(COMMANDS),
             responses=errors(409))
async def command(
    request: Request, ticket_no: str, action: str, who: Commander,
    body: Annotated[dict[str, Any] | None, Body(examples=[{"actor": "agent-7", "message": "我们已收到，正在处理"}])] = None,
) -> Any:
    """The body is the command without ``ticket_no`` (taken from the path), e.g. ``resolve``:
    ``{"actor": "agent-7", "outcome": "resolved", "solution": "replaced power module PWR-01"}``."""
    model = COMMANDS.get(action)
    if model is None and (allow := allowed_methods(request.app, request.url.path, exclude=COMMAND_PATH)):
        refusal = HTTPException(405, "Method Not Allowed", headers={"Allow": ", ".join(allow)})  # POST .../contact
        refusal.exact_allow = True  # type: ignore[attr-defined]  # not the command route's POST
        raise refusal
    if model is None:
        raise NotFound("action", f"unknown action {action!r}; one of {', '.join(COMMANDS)}")
    _check_no(ticket_no)
    if body is None:
        return JSONResponse(error_body([{"field": "body", "problem": "Field required"}]), status_code=422)
    try:
        cmd = model.model_validate({**body, "ticket_no": ticket_no})
    except ValidationError as exc:
        errors = [{"field": ".".join(str(p) for p in e["loc"]) or "body", "problem": e["msg"]}
                  for e in exc.errors(include_url=False)]
        return JSONResponse(error_body(errors), status_code=422)
    rt = _runtime(request)
    await usecases.apply_command(rt, action=action, cmd=cmd, caller=who.name)
    return await usecases.view(rt.pool, ticket_no=ticket_no)


def document(doc: dict[str, Any]) -> None:
    """The command route in the OpenAPI document as one path per command (``/v1/tickets/{no}/close``...),
    each with that command's body (without ``ticket_no``, which the path gives): a document cannot tie
    one path's body to the value of its ``action`` parameter."""
    generic = doc["paths"].pop(COMMAND_PATH)["post"]
    for action, model in COMMANDS.items():
        path = COMMAND_PATH.replace("{action}", action)
        if path in doc["paths"]:
            continue  # a command with a route of its own documents itself
        summary = f"ticket.{action}: {model.__doc__ or ''}".strip()
        op = {**generic, "operationId": f"command_{action}", "summary": summary,
              "parameters": [p for p in generic["parameters"] if p["name"] != "action"],
              "requestBody": {"required": True, "content": {"application/json": {
                  "schema": model_schema(doc, model, drop=("ticket_no",))}}}}
        doc["paths"][path] = {"post": op}


PAGE_CODES = ("200", "201", "303", "404", "409", "410", "422", "429")


def document_pages(doc: dict[str, Any]) -> None:
    """The progress page's routes (``/t/...``) answer pages (HTML) or, to JSON, JSON: say so."""
    both = {"text/html": {"schema": {"type": "string"}}, "application/json": {"schema": {}}}
    for path, ops in doc["paths"].items():
        if not path.startswith("/t/"):
            continue
        for op in ops.values():
            for code in PAGE_CODES:
                response = op["responses"].setdefault(code, {"description": "A page, or JSON to a JSON request"})
                error = code >= "400"
                response["content"] = {"text/html": both["text/html"],
                                       "application/json": {"schema": REF if error else {}}}


# ---- personal data (privacy): erase and export one customer (admin) ----

customers = APIRouter(prefix="/v1/customers", tags=["customers"])
Admin = Annotated[Principal, Depends(require("admin"))]
KeyPath = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="the customer's customer_key")]


class EraseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    actor: ShortText | None = None


class KeyLookup(BaseModel):
    # the document says what lookup_key enforces: one of phone, email, id (access)
    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [
        {"required": [k], "properties": {k: {"type": "string", "maxLength": 254}}} for k in ("phone", "email", "id")]})
    phone: Phone | None = None
    email: Email | None = None
    id: ShortText | None = None


@customers.post("/key", summary="The customer_key of a phone, email or channel customer id (admin)")
async def lookup_key(request: Request, body: KeyLookup, who: Admin) -> dict[str, Any]:
    """What an erasure or export request needs when the customer gives their phone or email."""
    key = customer_key(secret=_runtime(request).settings.customer_key_secret, phone=body.phone, email=body.email,
                       customer_id=body.id)
    if key is None:
        raise DomainError("body", "give one of phone, email, id")
    return {"customer_key": key}


@customers.post("/{customer_key}/erase", summary="Erase a customer's contacts and name everywhere (admin)")
async def erase(request: Request, customer_key: KeyPath, who: Admin,
                body: Annotated[EraseBody | None, Body()] = None) -> dict[str, Any]:
    """Intake erases its own rows and announces ``customer.erased`` (only the key); notification and
    survey erase theirs on that event. Tickets' facts stay. Idempotent."""
    actor = (body.actor if body else None) or who.name
    return await privacy.erase_customer(_runtime(request), customer_key=customer_key, actor=actor,
                                        now=datetime.now(UTC))


@customers.get("/{customer_key}/export", summary="Everything held about a customer, from every service (admin)")
async def export(request: Request, customer_key: KeyPath, who: Admin) -> dict[str, Any]:
    """Intake's own rows, and each other service's answer for its schema (``HELPDESK_EXPORT_PEERS``);
    a service that cannot be reached is named with ``error`` so an incomplete export says so."""
    rt = _runtime(request)
    own = await privacy.export_customer(rt.pool, customer_key=customer_key)
    peers = getattr(request.app.state, "export_peers", None) or rt.settings.export_peer_map
    others = {name: await _peer_export(url, customer_key, request.headers.get("x-api-key", ""))
              for name, url in peers.items()}
    return {"customer_key": customer_key, "exported_at": datetime.now(UTC), "services": {"intake": own, **others}}


async def _peer_export(base_url: str, customer_key: str, api_key: str) -> Any:
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=10.0, headers={"X-API-Key": api_key}) as client:
            r = await client.get(f"/v1/customers/{customer_key}/export")
    except httpx.HTTPError as exc:
        return {"error": f"unreachable: {type(exc).__name__}", "url": base_url}
    if r.status_code != 200:
        return {"error": f"HTTP {r.status_code}", "url": base_url}
    return r.json()
