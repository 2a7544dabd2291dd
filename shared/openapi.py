"""OpenAPI documents that tell the truth: every status a route can answer, with the body it really has.

``install(app)`` post-processes the generated document once: every error answer is the one error
shape (``ErrorBody``, not FastAPI's ``detail`` list); a route that needs a key lists 401 and 403; a
route with a path parameter 404; one with parameters or a body 422; one with a body 413 (the body
limit). Routes add their own (409, 410, 415, 429, ...) with ``responses=errors(...)``.
``allowed_methods`` gives a 405's ``Allow`` from the same document.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

ERROR_BODY = {
    "title": "ErrorBody",
    "type": "object",
    "required": ["errors"],
    "properties": {"errors": {"type": "array", "items": {
        "type": "object", "required": ["field", "problem"],
        "properties": {"field": {"type": "string"}, "problem": {"type": "string"}}}}},
}
DESCRIPTIONS = {
    400: "Unreadable request", 401: "No or an unknown X-API-Key", 403: "The key's roles do not allow this",
    404: "Not found (the field says what)", 405: "Method not allowed (see Allow)",
    409: "Conflicts with the current state",
    410: "Gone", 413: "Body larger than HELPDESK_MAX_BODY_BYTES", 415: "Unsupported content type",
    422: "Invalid input: each error names the field", 429: "Too many requests for this key",
    503: "A dependency (broker or database) is unreachable",
}
REF = {"$ref": "#/components/schemas/ErrorBody"}


def error(code: int, description: str | None = None) -> dict[str, Any]:
    return {"description": description or DESCRIPTIONS[code], "content": {"application/json": {"schema": REF}}}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route's own error answers (the common ones are added by ``install``)."""
    return {code: error(code) for code in codes}


def _augment(doc: dict[str, Any]) -> dict[str, Any]:
    components = doc.setdefault("components", {}).setdefault("schemas", {})
    components["ErrorBody"] = ERROR_BODY
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for ops in doc.get("paths", {}).values():
        for op in ops.values():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            params = op.get("parameters", [])
            codes = set()
            if op.get("security"):
                codes |= {401, 403}
            if any(p.get("in") == "path" for p in params):
                codes.add(404)
            if params or "requestBody" in op:
                codes.add(422)
            if "requestBody" in op:
                codes |= {400, 413}
            responses = op["responses"]
            for code in sorted(codes):
                responses.setdefault(str(code), error(code))
            if "422" in responses:  # FastAPI's own 422 claims a {"detail": ...} body; ours is ErrorBody
                responses["422"] = {**error(422), "description": responses["422"].get("description") or
                                    DESCRIPTIONS[422]}
    return doc


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the augmented document (then edited by each ``extend`` hook, once)."""
    generate = app.openapi
    app.state.openapi_hooks = []

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = _augment(generate())
            for hook in app.state.openapi_hooks:
                hook(doc)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def extend(app: FastAPI, hook: Callable[[dict[str, Any]], None]) -> None:
    """Edit the document where a route cannot say it itself (e.g. a body that depends on a path parameter)."""
    app.state.openapi_hooks.append(hook)


def model_schema(doc: dict[str, Any], model: Any, *, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """``model``'s JSON schema registered in the document's components; returns a ``$ref`` to it."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    components = doc.setdefault("components", {}).setdefault("schemas", {})
    for name, sub in schema.pop("$defs", {}).items():
        components.setdefault(name, sub)
    for field in drop:
        schema.get("properties", {}).pop(field, None)
        if field in schema.get("required", []):
            schema["required"].remove(field)
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _pattern(template: str, params: list[dict[str, Any]]) -> re.Pattern[str]:
    """A regex for ``template``; a path parameter with an ``enum`` matches only those values."""
    enums = {p["name"]: p["schema"]["enum"] for p in params
             if p.get("in") == "path" and isinstance(p.get("schema"), dict) and "enum" in p["schema"]}
    out = []
    for part in re.split(r"(\{[^}]+\})", template):
        name = part[1:-1] if part.startswith("{") else None
        if name is None:
            out.append(re.escape(part))
        else:
            out.append("(?:" + "|".join(re.escape(str(v)) for v in enums[name]) + ")" if name in enums else "[^/]+")
    return re.compile("^" + "".join(out) + "$")


def allowed_methods(app: FastAPI, path: str, *, exclude: str | None = None) -> list[str]:
    """The methods the document lists for ``path`` (a 405's ``Allow``), leaving out template ``exclude``."""
    cache = getattr(app.state, "allow_cache", None)
    if cache is None:
        cache = [(t, _pattern(t, op.get("parameters", [])), m.upper())
                 for t, ops in app.openapi().get("paths", {}).items() for m, op in ops.items() if m != "parameters"]
        app.state.allow_cache = cache
    return sorted({m for template, pattern, m in cache if template != exclude and pattern.match(path)})
