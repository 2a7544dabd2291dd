"""HTTP pieces every service uses: error bodies, body-size limit, ``/healthz`` and ``/metrics``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import DomainError
from shared.openapi import allowed_methods

HealthCheck = Callable[[], Awaitable[bool]]


def error_body(errors: list[dict[str, str]]) -> dict[str, object]:
    """The one error shape: ``{"errors": [{"field": "customer.name", "problem": "Field required"}]}``."""
    return {"errors": errors}


def _loc(loc: tuple[object, ...]) -> str:
    # FastAPI prefixes "body"/"path"/"header"; keep the field path a client knows.
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "path", "query", "header") and len(parts) > 1:
        parts = parts[1:]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for err in exc.errors():
            field = _loc(tuple(err.get("loc", ())))
            problem = err.get("msg", "invalid")
            if err.get("type") == "json_invalid":
                field, problem = "body", f"malformed JSON: {err.get('ctx', {}).get('error', problem)}"
            errors.append({"field": field, "problem": problem})
        return JSONResponse(error_body(errors), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Starlette's own refusals (unparseable body, unknown path, wrong method) in the same shape
        field = "body" if exc.status_code == 400 else "path" if exc.status_code in (404, 405) else "request"
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405 and not getattr(exc, "exact_allow", False):  # every route's, not the first's
            allowed = allowed_methods(request.app, request.url.path)
            if allowed:
                headers["Allow"] = ", ".join(allowed)
        return JSONResponse(error_body([{"field": field, "problem": str(exc.detail)}]), status_code=exc.status_code,
                            headers=headers or None)

    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        return JSONResponse(error_body([exc.as_dict()]), status_code=exc.status, headers=getattr(exc, "headers", None))


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413 before the application reads them.

    A declared ``Content-Length`` over the limit is refused at once; a body without one (chunked) is
    read here up to the limit and handed on whole, so a chunked body over it is a 413 too (the
    application never sees a truncated body, whose parse error would otherwise answer 400).
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(send)
            return
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: let the app see it
                await self.app(scope, _replay([message], receive), send)
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                await self._too_large(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        whole: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([whole], receive), send)

    async def _too_large(self, send: Send) -> None:
        body = orjson.dumps(error_body([{"field": "body", "problem": f"larger than {self.max_bytes} bytes"}]))
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that hands out ``messages`` first, then whatever the server sends (disconnect)."""
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


def install_ops_routes(
    app: FastAPI, checks: dict[str, HealthCheck], before_metrics: list[Callable[[], Awaitable[None]]]
) -> None:
    """``GET /healthz`` (200 when every check passes, else 503 naming the failing ones), ``GET /metrics``.

    ``before_metrics`` refresh gauges that are computed from the database at scrape time.
    """

    @app.get("/healthz", tags=["operations"], summary="200 when broker and database are reachable, else 503",
             responses={503: {"description": "A check failed (named in checks)"}})
    async def healthz() -> JSONResponse:
        async def run(check: HealthCheck) -> bool:
            try:
                return bool(await asyncio.wait_for(check(), 3.0))
            except Exception:  # noqa: BLE001 - any failure means unhealthy
                return False

        results = dict(zip(checks, await asyncio.gather(*(run(c) for c in checks.values())), strict=True))
        ok = all(results.values())
        return JSONResponse({"status": "ok" if ok else "unavailable", "checks": results},
                            status_code=200 if ok else 503)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics (text exposition format)",
             response_class=Response, responses={200: {"description": "Prometheus text format 0.0.4",
                                                       "content": {"text/plain": {"schema": {"type": "string"}}}}})
    async def metrics() -> Response:
        for refresh in before_metrics:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(refresh(), 3.0)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
