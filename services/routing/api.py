"""Routing's HTTP API: roster, agents' availability, queues, a ticket's routing (API key required)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from services.routing.usecases import roster
from services.routing.config import AgentSpec, Capacity, RuleSet
from shared.auth import Principal, require
from shared.errors import DomainError
from shared.runtime import Runtime


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def _rules(request: Request) -> RuleSet:
    return request.app.state.rules


router = APIRouter(prefix="/v1", tags=["routing"])
# Reads: agents and analysts; changing who works (roster, availability, capacity): supervisors.
Reader = Annotated[Principal, Depends(require("agent", "analyst"))]
Supervisor = Annotated[Principal, Depends(require("supervisor"))]


class RosterBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agents: list[AgentSpec] = Field(max_length=2000)


class AgentPatch(BaseModel):
    # the document says what patch_agent enforces: available and/or capacity, not null
    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [
        {"required": ["available"], "properties": {"available": {"type": "boolean"}}},
        {"required": ["capacity"], "properties": {"capacity": {"type": "integer"}}},
    ]})
    available: StrictBool | None = None  # strict: 0 is not false, false is not a capacity
    capacity: Capacity | None = None


@router.get("/roster", summary="Departments (with queue lengths) and agents (capacity, availability, load)")
async def get_roster(request: Request, who: Reader) -> dict[str, Any]:
    return await roster.view(_runtime(request).pool)


@router.put("/roster", summary="Replace the roster; agents left out are removed (or made unavailable "
            "while they still hold tickets)")
async def put_roster(request: Request, body: RosterBody, who: Supervisor) -> dict[str, Any]:
    return await roster.replace_roster(_runtime(request), _rules(request), body.agents, caller=who.name)


@router.get("/agents/{agent_id}", summary="An agent and the tickets they hold")
async def get_agent(request: Request, agent_id: str, who: Reader) -> dict[str, Any]:
    return await roster.agent(_runtime(request).pool, agent_id=agent_id)


@router.patch("/agents/{agent_id}", summary="Change an agent's availability or capacity; freed room "
              "takes the oldest queued tickets at once")
async def patch_agent(request: Request, agent_id: str, body: AgentPatch, who: Supervisor) -> dict[str, Any]:
    if body.available is None and body.capacity is None:
        raise DomainError("body", "give available and/or capacity")
    return await roster.change_agent(_runtime(request), agent_id=agent_id, available=body.available,
                                     capacity=body.capacity)


@router.get("/queue", summary="Tickets waiting for capacity, per department, oldest first")
async def get_queue(request: Request, who: Reader, department: str | None = None) -> dict[str, Any]:
    return await roster.queue(_runtime(request).pool, department=department)


@router.get("/assignments/{ticket_no}", summary="A ticket's routing: state, owner, history, escalations")
async def get_assignment(request: Request, ticket_no: str, who: Reader) -> dict[str, Any]:
    return await roster.ticket(_runtime(request).pool, ticket_no=ticket_no)


@router.get("/rules", summary="The running rule set: version, file hash, departments, escalation chain")
async def get_rules(request: Request, who: Reader) -> dict[str, Any]:
    rules = _rules(request)
    return {"version": rules.version, "sha256": rules.sha256, "source": str(request.app.state.rules_source),
            "rules": [r.name for r in rules.rules],
            "departments": {k: v.model_dump() for k, v in rules.departments.items()},
            "escalation": rules.escalation.model_dump()}


def document(doc: dict[str, Any], rules: RuleSet) -> None:
    """The roster's ``department`` is one of the running rule set's departments (PUT refuses others)."""
    spec = doc.get("components", {}).get("schemas", {}).get("AgentSpec")
    if spec:
        spec["properties"]["department"]["enum"] = sorted(rules.departments)
