"""Survey's HTTP: the customer's page ``/s/{token}`` (GET shows it, POST answers it as JSON or as
the page's form) and a read for agents, ``GET /v1/surveys?ticket_no=`` (API key)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import ValidationError

from services.survey import domain, page, usecases
from services.survey.domain import SurveyAnswer
from shared.auth import Principal, require
from shared.errors import DomainError
from shared.http import error_body
from shared.openapi import REF, error
from shared.messages import TICKET_NO_PATTERN

TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
STATUS = {"form": 200, "answered": 409, "expired": 410, "cancelled": 410, "unknown": 404}
# The page needs no script, no outside resource and no framing; the token must not leak or be cached.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
# The customers' pages on a router of their own (an ingress exposes only these: deploy/k8s/ingress.yaml);
# the staff read on ``router`` (API key).
pages = APIRouter(tags=["customer pages"])
router = APIRouter(tags=["survey"])


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def _html_or_json(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}},
                                                    "application/json": {"schema": REF}}}


CLOSED = {404: _html("Unknown link"), 409: _html("Already answered"), 410: _html("Expired or withdrawn")}
FORM_FIELDS = {
    "type": "object",
    "properties": {"resolved": {"type": "string", "enum": ["yes", "no"]},
                   **{k: {"type": "string", "enum": ["1", "2", "3", "4", "5"]}
                      for k in ("speed", "attitude", "overall")},
                   "comment": {"type": "string", "maxLength": 2000}},
}
ANSWER_BODY = {"required": True, "content": {
    "application/json": {"schema": SurveyAnswer.model_json_schema(ref_template="#/components/schemas/{model}")},
    "application/x-www-form-urlencoded": {"schema": FORM_FIELDS},
}}


class UnsupportedMedia(DomainError):
    status = 415


def _ctx(request: Request):
    return request.app.state.runtime, request.app.state.policy


async def _find(request: Request, token: str):
    rt, _ = _ctx(request)
    return await usecases.find(rt.pool, token=token) if TOKEN.match(token) else None


def _closed(state: str, lang: str) -> HTMLResponse:
    return HTMLResponse(page.render_closed(lang=lang, state=state), status_code=STATUS[state], headers=PAGE_HEADERS)


@pages.get("/s/{token}", response_class=HTMLResponse, summary="The survey page (or why the link is closed)",
           responses={200: _html("The questions"), **CLOSED})
async def show(request: Request, token: str, lang: str | None = None) -> HTMLResponse:
    """200 with the questions; 409 answered, 410 expired or withdrawn, 404 unknown — each a clear page."""
    row = await _find(request, token)
    state = domain.page_state(row, datetime.now(UTC))
    lang = page.page_language(row["language"] if row else None, lang)
    if state != "form":
        return _closed(state, lang)
    return HTMLResponse(page.render_form(lang=lang, ticket_no=row["ticket_no"]), headers=PAGE_HEADERS)


@pages.post("/s/{token}", summary="Answer the survey (JSON body of the contract, or the page's form)",
            status_code=201, openapi_extra={"requestBody": ANSWER_BODY}, responses={
                201: {"description": "Answered (JSON)"}, 303: {"description": "Form answered: to the thank-you page"},
                404: _html_or_json("Unknown link"), 409: _html_or_json("Already answered"),
                410: _html_or_json("Expired or withdrawn"), 413: error(413), 415: error(415),
                422: _html_or_json("Invalid answer: the field is named (the form is shown again)")})
async def submit(request: Request, token: str, lang: str | None = None) -> Response:
    """JSON ``{"resolved": bool, "speed": 1-5, "attitude": 1-5, "overall": 1-5, "comment": str}``:
    201, or 422 naming the field, 409 when already answered, 410 expired/withdrawn, 404 unknown.
    The page's form (``application/x-www-form-urlencoded``) gets the same rules as HTML pages."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await request.body()
    if media == "application/json" or media.endswith("+json"):
        return await _answer_json(request, token, raw)
    if media == "application/x-www-form-urlencoded":
        return await _answer_form(request, token, raw, lang)
    raise UnsupportedMedia("content-type", "send application/json or the page's form")


async def _answer_json(request: Request, token: str, raw: bytes) -> JSONResponse:
    rt, policy = _ctx(request)
    domain.check_answerable(await _find(request, token), datetime.now(UTC))
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DomainError("body", f"malformed JSON: {exc}") from None
    if not isinstance(body, dict):
        raise DomainError("body", "must be a JSON object")
    try:
        answer = SurveyAnswer.model_validate(body)
    except ValidationError as exc:
        return JSONResponse(error_body(_errors(exc)), status_code=422)
    row, verdict = await usecases.answer(rt, policy, token=token, answer=answer, now=datetime.now(UTC))
    return JSONResponse({"survey_id": str(row["survey_id"]), "ticket_no": row["ticket_no"], "status": "answered",
                         "satisfied": verdict.satisfied, "negative": verdict.negative}, status_code=201)


def _errors(exc: ValidationError) -> list[dict[str, str]]:
    return [{"field": ".".join(str(p) for p in e["loc"]) or "body", "problem": e["msg"]}
            for e in exc.errors(include_url=False)]


async def _answer_form(request: Request, token: str, raw: bytes, lang_override: str | None) -> Response:
    rt, policy = _ctx(request)
    row = await _find(request, token)
    lang = page.page_language(row["language"] if row else None, lang_override)
    state = domain.page_state(row, datetime.now(UTC))
    if state != "form":
        return _closed(state, lang)
    try:
        form = parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        form = {}
    body = domain.form_to_body(form)
    try:
        answer = SurveyAnswer.model_validate(body)
    except ValidationError as exc:
        html = page.render_form(lang=lang, ticket_no=row["ticket_no"], values=body,
                                errors=page.field_errors(exc, lang))
        return HTMLResponse(html, status_code=422, headers=PAGE_HEADERS)
    try:
        await usecases.answer(rt, policy, token=token, answer=answer, now=datetime.now(UTC))
    except DomainError:  # answered or expired in the meantime
        return _closed(domain.page_state(await _find(request, token), datetime.now(UTC)), lang)
    query = f"?{urlencode({'lang': lang_override})}" if lang_override in domain.LANGUAGES else ""
    return RedirectResponse(f"{token}/thanks{query}", status_code=303)


@pages.get("/s/{token}/thanks", response_class=HTMLResponse, summary="The thank-you page after answering",
           responses={200: _html("Thank you"), 303: {"description": "Not answered: back to the survey page"}})
async def thanks(request: Request, token: str, lang: str | None = None) -> Response:
    row = await _find(request, token)
    if row is None or row["status"] != "answered":
        return RedirectResponse(f"../{token}", status_code=303)
    negative = row["resolved"] is False or row["overall"] <= domain.NEGATIVE_MAX
    html = page.render_thanks(lang=page.page_language(row["language"], lang), negative=negative)
    return HTMLResponse(html, headers=PAGE_HEADERS)


@router.get("/v1/surveys", summary="A ticket's surveys with their answers (for agents; API key)")
async def list_surveys(
    request: Request, ticket_no: Annotated[str, Query(pattern=TICKET_NO_PATTERN)],
    who: Annotated[Principal, Depends(require("agent", "analyst"))],
) -> dict[str, Any]:
    rt, _ = _ctx(request)
    rows = await usecases.for_ticket(rt.pool, ticket_no=ticket_no)
    keep = ("status", "language", "complaint", "resolved_at", "send_at", "sent_at", "reminded_at", "expires_at",
            "answered_at", "ended_at", "cancel_reason", "resolved", "speed", "attitude", "overall", "comment")
    return {"ticket_no": ticket_no,
            "surveys": [{"survey_id": str(r["survey_id"]), **{k: r[k] for k in keep}} for r in rows]}

