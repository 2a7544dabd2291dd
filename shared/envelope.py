"""The CloudEvents 1.0 envelope (structured JSON mode) every event on ``helpdesk.events`` uses."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

CONTENT_TYPE = "application/cloudevents+json"


class CloudEvent(BaseModel):
    """A CloudEvent; ``data`` always carries ``ticket_no`` and the owning service's per-ticket ``seq``."""

    model_config = ConfigDict(frozen=True, extra="allow")

    specversion: str = Field("1.0", pattern=r"^1\.0$")
    id: str = Field(min_length=1, max_length=200)
    source: str = Field(min_length=1, max_length=200)
    type: str = Field(min_length=1, max_length=100)
    subject: str | None = None
    time: datetime
    datacontenttype: str = "application/json"
    data: dict[str, Any]

    @property
    def ticket_no(self) -> str | None:
        return self.data.get("ticket_no")

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json", exclude_none=True))

    @classmethod
    def from_bytes(cls, body: bytes) -> CloudEvent:
        return cls.model_validate_json(body)


def new_event(
    *, service: str, type: str, ticket_no: str, seq: int, data: dict[str, Any], time: datetime | None = None
) -> CloudEvent:
    """Build an envelope for ``type`` about ``ticket_no``; ``data`` gets ``ticket_no`` and ``seq``."""
    return CloudEvent(
        id=str(uuid.uuid4()),
        source=f"/helpdesk/{service}",
        type=type,
        subject=ticket_no,
        time=time or datetime.now(UTC),
        data={**data, "ticket_no": ticket_no, "seq": seq},
    )
