"""HTTP routes of the records commands (#14): ``POST /v1/tickets/{no}/{diagnose|schedule|verify|determine|
revisit}``, each with its own body schema and statuses (registered before the generic action route)."""

# no "from __future__ import annotations": FastAPI reads the generated body models from the signatures

from typing import Any

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import create_model

from services.intake import usecases
from shared.auth import Principal, require
from shared.messages import RECORDS_COMMANDS, ShortText, Wire

Agent = Annotated[Principal, Depends(require("agent"))]  # the records commands are an agent's (INTERFACES.md)

router = APIRouter(prefix="/v1/tickets", tags=["records"])

RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "no or unknown X-API-Key"},
    403: {"description": "the key lacks role agent"},
    404: {"description": "no such ticket (the body names `ticket_no`)"},
    409: {"description": "the ticket's status or category does not allow the command; for resolve of a "
                         "complaint: responsibility / remedy missing (the body names what)"},
    422: {"description": "a field is missing or invalid (the body names it)"},
}
SUMMARIES = {
    "diagnose": "Record the diagnosis (检测结果): result, cause, sub_item, responsibility",
    "schedule": "Book an on-site visit: appointment_at and place (the place is personal: masked in events)",
    "verify": "Complaints: how the complaint was verified (call recording, CCTV, records) and the findings",
    "determine": "Complaints: responsibility (internal names the department), remedy, amount, customer_accepted",
    "revisit": "The follow-up call after resolution: outcome, satisfied (stops the sla revisit clock)",
}


def _body(action: str, fields: type[Wire]) -> type[Wire]:
    return create_model(f"{action.capitalize()}Body", __base__=fields,
                        actor=(ShortText, ...), command_id=(ShortText | None, None))


def _route(action: str, fields: type[Wire]) -> None:
    body_model = _body(action, fields)
    command_model = RECORDS_COMMANDS[action][0]

    async def handler(request: Request, ticket_no: str, body: body_model, who: Agent) -> dict[str, Any]:  # type: ignore[valid-type]
        rt = request.app.state.runtime
        _check_no(ticket_no)
        cmd = command_model.model_validate({**body.model_dump(), "ticket_no": ticket_no})
        await usecases.apply_command(rt, action=action, cmd=cmd, caller=who.name)
        return await usecases.view(rt.pool, ticket_no=ticket_no)

    handler.__doc__ = f"``ticket.{action}`` over HTTP; the ticket as ``GET /v1/tickets/{{no}}`` shows it after."
    router.add_api_route(f"/{{ticket_no}}/{action}", handler, methods=["POST"], status_code=200,
                         summary=SUMMARIES[action], responses=RESPONSES, name=f"ticket_{action}")


def _check_no(ticket_no: str) -> None:
    from services.intake.api import _check_no as check

    check(ticket_no)


for _action, (_cmd, _fields) in RECORDS_COMMANDS.items():
    _route(_action, _fields)
