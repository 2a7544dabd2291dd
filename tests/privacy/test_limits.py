"""Every text and list field of the wire models is bounded; an oversized body is a 413 however it
is sent (declared length or chunked), and an oversized AMQP message is dead-lettered."""

from __future__ import annotations

import asyncio
import socket
import uuid
from typing import Any

import httpx
import pytest
import uvicorn

from services.intake.api import EraseBody, KeyLookup
from services.review.api import ActionIn, ActionPatch
from services.routing.api import AgentPatch, RosterBody
from services.survey.domain import SurveyAnswer
from shared.messages import COMMANDS, EraseCustomer, IntakeTicket, Wire
from tests.conftest import API_KEY


def _all_wire() -> list[type]:
    found, todo = [], [Wire]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.append(sub)
            todo.append(sub)
    return found


# every inbound model: the wire models (whoever adds one is checked) and the HTTP bodies of the services
WIRE_MODELS = list(dict.fromkeys([IntakeTicket, EraseCustomer, SurveyAnswer, *COMMANDS.values(), *_all_wire(),
                                  RosterBody, AgentPatch, ActionIn, ActionPatch, EraseBody, KeyLookup]))


def _unbounded(schema: dict[str, Any], defs: dict[str, Any], path: str) -> list[str]:
    if "$ref" in schema:
        return _unbounded(defs[schema["$ref"].split("/")[-1]], defs, path)
    found = []
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, []):
            found += _unbounded(sub, defs, path)
    kind = schema.get("type")
    if kind == "string" and not ({"maxLength", "enum", "const", "format"} & set(schema)):
        found.append(path)
    if kind == "array":
        if "maxItems" not in schema:
            found.append(path + "[]")
        found += _unbounded(schema.get("items", {}), defs, path + "[]")
    if kind == "object" or "properties" in schema:
        for name, sub in schema.get("properties", {}).items():
            found += _unbounded(sub, defs, f"{path}.{name}")
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            found.append(path + ".*")
    return found


@pytest.mark.parametrize("model", WIRE_MODELS, ids=lambda m: m.__name__)
def test_every_text_and_list_field_is_bounded(model):
    schema = model.model_json_schema()
    assert _unbounded(schema, schema.get("$defs", {}), model.__name__) == []


def _ticket(staff: list[str]) -> dict[str, Any]:
    return {"channel": "web", "customer": {"name": "李雷"}, "subject": "态度差",
            "complaint": {"type": "attitude", "involved_staff": staff}}


async def test_involved_staff_at_most_20(intake):
    ok = await intake.client.post("/v1/tickets", json=_ticket([f"agent-{i}" for i in range(20)]))
    assert ok.status_code == 201, ok.text
    r = await intake.client.post("/v1/tickets", json=_ticket([f"agent-{i}" for i in range(5000)]))
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"].startswith("complaint.involved_staff")


@pytest.fixture
async def served(intake):
    """The intake app behind a real uvicorn on loopback, so the body really arrives chunked."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(intake.app, host="127.0.0.1", port=port, log_config=None,
                                           access_log=False, lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await asyncio.wait_for(task, 10)


async def test_chunked_oversized_body_is_413_like_a_declared_one(served):
    big = b'{"channel": "web", "customer": {"name": "x"}, "description": "' + b"a" * 70_000 + b'"}'

    async def chunks():
        for i in range(0, len(big), 8192):
            yield big[i:i + 8192]

    async with httpx.AsyncClient(base_url=served, headers={"X-API-Key": API_KEY}) as client:
        chunked = await client.post("/v1/tickets", content=chunks(), headers={"content-type": "application/json"})
        declared = await client.post("/v1/tickets", content=big, headers={"content-type": "application/json"})
        small = await client.post("/v1/tickets", content=chunks_of(b'{"channel": "web", "customer": {"name": "x"},'
                                                                    b' "subject": "ok"}'),
                                  headers={"content-type": "application/json"})
    assert chunked.request.headers.get("transfer-encoding") == "chunked"
    assert chunked.status_code == 413 and declared.status_code == 413
    assert chunked.json() == {"errors": [{"field": "body", "problem": "larger than 65536 bytes"}]}
    assert small.status_code == 201, small.text  # a chunked body within the limit goes through whole


def chunks_of(data: bytes):
    async def gen():
        for i in range(0, len(data), 10):
            yield data[i:i + 10]
    return gen()


async def test_oversized_amqp_intake_message_is_dead_lettered(intake, publisher, dlq_tap):
    mid = f"big-{uuid.uuid4().hex}"
    body = {"channel": "web", "customer": {"name": "x"}, "description": "a" * 70_000}
    await publisher.publish("helpdesk.intake", "intake.web", body, message_id=mid)
    [dead] = await dlq_tap.wait_messages(lambda m: m.message_id == mid)
    assert dead.headers["x-helpdesk-reason"] == "body: larger than 65536 bytes"
