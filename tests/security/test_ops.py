"""Operations endpoints and the API documents: /docs off unless asked (and then no CDN), /metrics
without agent ids, 405 with a correct Allow, every status and body in the OpenAPI documents.
(The apps are built, not started: none of this touches the broker or the database.)"""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import generate_latest

from services.intake.app import create_app as intake_app
from services.notification.app import create_app as notification_app
from services.routing import metrics as routing_metrics
from services.routing.app import create_app as routing_app
from services.sla.app import create_app as sla_app
from services.survey.app import create_app as survey_app
from shared.messages import COMMANDS
from shared.settings import Settings

APPS = {"intake": intake_app, "routing": routing_app, "sla": sla_app, "notification": notification_app,
        "survey": survey_app}


def _app(name: str, **env: str):  # noqa: ANN202
    return APPS[name](Settings(HELPDESK_API_KEYS="ops:k:admin", **env))


async def _get(app, method: str, path: str, **kw) -> httpx.Response:  # noqa: ANN001, ANN003
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        return await c.request(method, path, **kw)


@pytest.mark.parametrize("name", list(APPS))
async def test_docs_are_off_unless_asked(name: str) -> None:
    app = _app(name, HELPDESK_DOCS="false")
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert (await _get(app, "GET", path)).status_code == 404, path


async def test_docs_when_asked_load_nothing_from_a_cdn() -> None:
    app = _app("survey", HELPDESK_DOCS="true")
    page = await _get(app, "GET", "/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower() and "https://" not in page.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f"/static-offline-docs/{asset}" in page.text
        assert (await _get(app, "GET", f"/static-offline-docs/{asset}")).status_code == 200
    assert (await _get(app, "GET", "/openapi.json")).status_code == 200


@pytest.mark.parametrize("name, method, path, allow", [
    ("routing", "DELETE", "/v1/roster", "GET, PUT"),
    ("routing", "POST", "/v1/agents/eng-wang", "GET, PATCH"),
    ("survey", "PUT", "/s/" + "a" * 32, "GET, POST"),
    ("intake", "PUT", "/v1/tickets", "POST"),
    ("intake", "POST", "/v1/tickets/20260101000001/contact", "GET"),
    ("intake", "GET", "/v1/tickets/20260101000001/close", "POST"),
    ("sla", "POST", "/metrics", "GET"),
])
async def test_405_allow_lists_every_method_of_the_path(name: str, method: str, path: str, allow: str) -> None:
    r = await _get(_app(name), method, path, headers={"X-API-Key": "k"}, json={})
    assert r.status_code == 405 and r.headers["allow"] == allow
    assert r.json()["errors"][0]["field"] == "path"


@pytest.mark.parametrize("name", list(APPS))
def test_openapi_lists_every_status_and_the_error_body(name: str) -> None:
    doc = _app(name).openapi()
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            codes = set(op["responses"])
            where = f"{method.upper()} {path}"
            if op.get("security"):
                assert {"401", "403"} <= codes, where
            if any(p["in"] == "path" for p in op.get("parameters", [])):
                assert "404" in codes, where
            if "requestBody" in op:
                assert {"400", "413", "422"} <= codes, where
            for code, response in op["responses"].items():
                if code >= "400" and "application/json" in response.get("content", {}):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}, where
    metrics = doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]


def test_route_specific_statuses_and_bodies() -> None:
    intake = _app("intake").openapi()["paths"]
    assert "429" in intake["/v1/tickets/{ticket_no}/contact"]["get"]["responses"]
    for action in COMMANDS:  # one documented path per command, each with its own body
        command = intake[f"/v1/tickets/{{ticket_no}}/{action}"]["post"]
        assert {"401", "403", "404", "422"} <= set(command["responses"]), action
    close = intake["/v1/tickets/{ticket_no}/close"]["post"]
    assert "409" in close["responses"]
    assert close["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/CloseTicket"}
    assert {"200", "201"} <= set(intake["/v1/tickets"]["post"]["responses"])
    survey = _app("survey").openapi()["paths"]["/s/{token}"]["post"]
    assert set(survey["requestBody"]["content"]) == {"application/json", "application/x-www-form-urlencoded"}
    assert {"201", "303", "404", "409", "410", "413", "415", "422"} <= set(survey["responses"])


def _agents(per_agent: bool) -> str:
    rows = [{"id": "eng-wang", "department": "technical", "load": 2, "capacity": 5, "available": True},
            {"id": "eng-li", "department": "technical", "load": 1, "capacity": 5, "available": False}]
    routing_metrics.set_agents(rows, per_agent=per_agent)
    return generate_latest().decode()


def test_metrics_name_no_agent_unless_asked() -> None:
    text = _agents(False)
    assert "eng-wang" not in text and "eng-li" not in text
    assert 'helpdesk_routing_agent_load{agent="all",department="technical"} 3.0' in text
    assert 'helpdesk_routing_agent_capacity{agent="all",department="technical"} 5.0' in text
    text = _agents(True)
    assert 'helpdesk_routing_agent_load{agent="eng-wang",department="technical"} 2.0' in text
    _agents(False)


async def test_routing_metrics_follow_the_setting() -> None:
    assert Settings().metrics_agent_labels is False
    assert Settings(HELPDESK_METRICS_AGENT_LABELS="true").metrics_agent_labels is True
