"""The customer's public router: ``/t/{token}`` (the progress page) and its three forms. No API key —
the unguessable token is the credential — so an ingress can expose this router alone. Every page is
``no-store``, ``no-referrer`` and under a CSP that allows no script and no outside resource.

Each POST takes the page's form (303 back to the page) or JSON (201 with a JSON body); refusals are
pages (or the house JSON error shape): 404 bad token, 410 expired, 422 naming the field, 409 (a
second confirmation, a closed ticket), 429 (the link's write budget, a repeated call-back request).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from services.intake import progress, progress_page
from shared.errors import DomainError
from shared.http import error_body

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
STATES = {"unknown": 404, "expired": 410}
router = APIRouter(tags=["progress (public)"])
_REFUSALS: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such link (an HTML page; JSON errors for a JSON request)"},
    410: {"description": "the link expired (its ticket closed long ago)"},
    409: {"description": "not now: the ticket is closed, or the outcome was already confirmed"},
    422: {"description": "a field is empty, too long or invalid (named)"},
    429: {"description": "the link's write budget is used up, or a call back was just requested"},
}
_WRITE = {303: {"description": "form: back to the page"}, **_REFUSALS}


def _body_doc(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": required}
    return {"requestBody": {"required": False, "content": {
        "application/x-www-form-urlencoded": {"schema": schema}, "application/json": {"schema": schema}}}}


_TEXT = {"type": "string", "minLength": 1, "maxLength": 2000}


def _ctx(request: Request) -> tuple[Any, progress.ProgressSettings]:
    return request.app.state.runtime, request.app.state.progress


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=PAGE_HEADERS)


@router.get("/t/{token}", response_class=HTMLResponse, summary="The customer's progress page",
            responses={404: _REFUSALS[404], 410: _REFUSALS[410]})
async def show(request: Request, token: str, lang: str | None = None, done: str | None = None) -> HTMLResponse:
    """200 with status, current step and its promised time, expected resolution and the customer-visible
    timeline; 404 for a bad token, 410 when the ticket closed more than ``INTAKE_PROGRESS_TTL_DAYS`` ago."""
    rt, opts = _ctx(request)
    view = await progress.page(rt.pool, opts, token=token, now=datetime.now(UTC))
    language = progress_page.language(view.language, lang)
    if view.state != "open":
        return _html(progress_page.render_closed(state=view.state, lang=language), STATES[view.state])
    return _html(progress_page.render_page(view, token=token, lang=language, tz=rt.settings.tz, done=done))


async def _body(request: Request) -> tuple[dict[str, Any], bool]:
    """The POST's fields and whether it came as JSON."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await request.body()
    if media == "application/json" or media.endswith("+json"):
        try:
            body = orjson.loads(raw or b"{}")
        except orjson.JSONDecodeError as exc:
            raise DomainError("body", f"malformed JSON: {exc}") from None
        if not isinstance(body, dict):
            raise DomainError("body", "must be a JSON object")
        return body, True
    try:
        form = parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        raise DomainError("body", "not a form (application/x-www-form-urlencoded, UTF-8)") from None
    return {k: v[0] for k, v in form.items()}, False


async def _act(request: Request, token: str, action: str, lang: str | None) -> Response:
    rt, opts = _ctx(request)
    try:
        body, as_json = await _body(request)
    except DomainError as exc:
        return JSONResponse(error_body([exc.as_dict()]), status_code=exc.status, headers=PAGE_HEADERS)
    try:
        done = await _run(rt, opts, token, action, body)
    except DomainError as exc:
        if as_json:
            return JSONResponse(error_body([exc.as_dict()]), status_code=exc.status, headers=PAGE_HEADERS)
        return await _refused(request, token, exc, body, action, lang)
    if as_json:
        return JSONResponse({"done": done}, status_code=201, headers=PAGE_HEADERS)
    query = {"done": done, **({"lang": lang} if lang else {})}
    return RedirectResponse(f"../{token}?{urlencode(query)}", status_code=303, headers=PAGE_HEADERS)


async def _run(rt: Any, opts: progress.ProgressSettings, token: str, action: str, body: dict[str, Any]) -> str:
    if action == "reply":
        await progress.add_information(rt, opts, token=token, text=body.get("text"))
        return "reply"
    if action == "callback":
        await progress.request_callback(rt, opts, token=token)
        return "callback"
    solved = await progress.confirm(rt, opts, token=token, solved=body.get("solved"), words=body.get("text"))
    return "confirmed" if solved else "reopened"


async def _refused(request: Request, token: str, exc: DomainError, body: dict[str, Any], action: str,
                   lang: str | None) -> HTMLResponse:
    """The refusal as the customer sees it: the page again with the field marked (422), else a short page."""
    rt, opts = _ctx(request)
    view = await progress.page(rt.pool, opts, token=token, now=datetime.now(UTC))
    language = progress_page.language(view.language, lang)
    if view.state != "open":
        return _html(progress_page.render_closed(state=view.state, lang=language), STATES[view.state])
    if exc.status == 422:
        field = "confirm_text" if (action == "confirm" and exc.field == "text") else exc.field
        values = {"confirm_text" if action == "confirm" else "text": body.get("text"), "solved": body.get("solved")}
        errors = {field: progress_page.error_message(exc.field, language)}
        return _html(progress_page.render_page(view, token=token, lang=language, tz=rt.settings.tz, errors=errors,
                                               values=values, from_action=True), 422)
    state = "too_many" if exc.status == 429 else "conflict"
    return _html(progress_page.render_closed(state=state, lang=language, problem=exc.problem, back=f"../{token}"),
                 exc.status)


@router.post("/t/{token}/reply", summary="The customer adds information (ticket.customer_replied)",
             status_code=201, responses=_WRITE, openapi_extra=_body_doc({"text": _TEXT}, ["text"]))
async def reply(request: Request, token: str, lang: str | None = None) -> Response:
    """Form or JSON ``{"text": "…"}`` (1–2000 characters): joins the timeline; a waiting ticket resumes."""
    return await _act(request, token, "reply", lang)


@router.post("/t/{token}/callback", summary="The customer asks for a call back (ticket.escalation_requested)",
             status_code=201, responses=_WRITE)
async def callback(request: Request, token: str, lang: str | None = None) -> Response:
    """Escalation with reason ``customer``; once per ``INTAKE_PROGRESS_CALLBACK_EVERY_S`` (else 429)."""
    return await _act(request, token, "callback", lang)


@router.post("/t/{token}/confirm", summary="The customer confirms the outcome (ticket.confirmed, or reopened)",
             status_code=201, responses=_WRITE, openapi_extra=_body_doc(
                 {"solved": {"type": "string", "enum": ["yes", "no"]}, "text": _TEXT}, ["solved"]))
async def confirm(request: Request, token: str, lang: str | None = None) -> Response:
    """Form or JSON ``{"solved": "yes"|"no", "text": "…"}``: yes → ``ticket.confirmed``; no → the ticket is
    reopened with the customer's words. Once per resolution (else 409)."""
    return await _act(request, token, "confirm", lang)
