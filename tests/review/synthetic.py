"""Synthetic tickets with known times: the events each publisher would send, with their sources and
per-ticket seqs (intake, routing, sla, survey numbered separately)."""

from __future__ import annotations

import itertools
import random
import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from shared.envelope import CloudEvent

TZ = ZoneInfo("Asia/Shanghai")
_serial = itertools.count(random.randrange(100_000, 800_000))


def local(y: int, m: int, d: int, h: int = 10, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=TZ)


class Ticket:
    """Builds one ticket's events; ``events`` is the list in publishing order."""

    def __init__(self, received: datetime, **created: Any) -> None:
        self.no = f"{received.strftime('%Y%m%d')}9{next(_serial):05d}"
        self.received = received
        self.seqs: dict[str, int] = {}
        self.events: list[CloudEvent] = []
        data = {"channel": "phone", "customer": {"name": "测试", "phone": "138****0000", "tier": "standard"},
                "subject": "合成工单", "description": None, "kind": None, "urgency": "normal", "impact": "single",
                "received_at": received.isoformat(), "created_at": received.isoformat(), "complaint": None}
        data.update(created)
        self.emit("intake", "ticket.created", data)

    def emit(self, service: str, type_: str, data: dict[str, Any]) -> CloudEvent:
        seq = self.seqs[service] = self.seqs.get(service, 0) + 1
        event = CloudEvent(id=str(uuid.uuid4()), source=f"/helpdesk/{service}", type=type_, subject=self.no,
                           time=self.received, data={**data, "ticket_no": self.no, "seq": seq})
        self.events.append(event)
        return event

    def at(self, minutes: float) -> str:
        return (self.received + timedelta(minutes=minutes)).isoformat()

    def routed(self, category: str, priority: str, assignee: str | None = "agent-1", department: str = "售后一组"):
        self.emit("routing", "ticket.routed", {"category": category, "priority": priority, "department": department,
                                               "assignee": assignee, "rule": "synthetic"})
        return self

    def responded(self, minutes: float, actor: str = "agent-1"):
        first = not any(e.type == "ticket.responded" for e in self.events)
        self.emit("intake", "ticket.responded", {"actor": actor, "at": self.at(minutes), "first": first})
        return self

    def resolved(self, minutes: float, *, first_contact: bool, outcome: str = "resolved", actor: str = "agent-1",
                 **extra: Any):
        self.emit("intake", "ticket.resolved", {"outcome": outcome, "solution": "已处理", "actor": actor,
                                                "at": self.at(minutes), "first_contact": first_contact, **extra})
        return self

    def reopened(self, minutes: float):
        self.emit("intake", "ticket.reopened", {"actor": "customer", "at": self.at(minutes), "reason": "复发"})
        return self

    def escalated(self, level: int = 1):
        self.emit("routing", "ticket.escalated", {"level": level, "to": "lead", "reason": "sla"})
        return self

    def sla(self, metric: str, outcome: str, minutes: float, business_seconds: float = 0.0, calendar: str = "24x7"):
        due = self.at(minutes)
        self.emit("sla", "sla.started", {"metric": metric, "due_at": due, "policy": "default", "calendar": calendar})
        if outcome == "met":
            self.emit("sla", "sla.met", {"metric": metric, "due_at": due, "met_at": due,
                                         "business_seconds": business_seconds})
        else:
            self.emit("sla", "sla.breached", {"metric": metric, "due_at": due, "breached_at": due})
        return self

    def survey(self, overall: int | None, *, cancelled: bool = False):
        sid = str(uuid.uuid4())
        self.emit("survey", "survey.sent", {"survey_id": sid, "url": "http://x/s/tok"})
        if cancelled:
            self.emit("survey", "survey.cancelled", {"survey_id": sid, "reason": "reopened", "was_sent": True})
        elif overall is not None:
            self.emit("survey", "survey.completed", {"survey_id": sid, "resolved": overall >= 3, "speed": 4,
                                                     "attitude": 4, "overall": overall})
        return self


def month_of_tickets(y: int, m: int, *, key_prefix: str) -> list[Ticket]:
    """A dozen tickets of one month covering every figure's cases."""
    k1, k2 = f"{key_prefix}-cust-a", f"{key_prefix}-cust-b"
    return [
        Ticket(local(y, m, 3, 9, 0), channel="phone", customer_key=k1).routed("fault", "P1")
        .responded(10).resolved(120, first_contact=True).sla("first_response", "met", 15, 600).survey(5)
        .sla("next_update", "met", 40).sla("next_update", "met", 100),
        Ticket(local(y, m, 4, 14, 30), channel="web", customer_key=k2).routed("fault", "P2")
        .responded(300).resolved(1500, first_contact=False).sla("first_response", "breached", 240).survey(2)
        .sla("next_update", "breached", 420).sla("next_update", "met", 900).sla("next_update", "breached", 1400),
        Ticket(local(y, m, 5, 8, 0), channel="wechat", customer_key=k1, complaint={"type": "attitude"})
        .routed("complaint", "P2").responded(45).escalated().resolved(600, first_contact=False)
        .sla("first_response", "met", 240, 2700).reopened(700).resolved(900, first_contact=False).survey(4),
        Ticket(local(y, m, 12, 11, 0), channel="phone", customer_key=k1).routed("attitude", "P2")
        .responded(20).sla("first_response", "met", 240, 1200),
        Ticket(local(y, m, 13, 16, 45), channel="email", customer_key=k2).routed("consultation", "P3")
        .responded(61.5).resolved(62, first_contact=True).sla("first_response", "met", 120, 3690).survey(None),
        Ticket(local(y, m, 20, 23, 59), channel="app").routed("logistics", "P3").responded(125)
        .sla("first_response", "breached", 120),
        Ticket(local(y, m, 21, 0, 1), channel="app").routed("suggestion", "P4"),
        Ticket(local(y, m, 25, 10, 0), channel="onsite", customer_key=k2, complaint={"type": "quality"})
        .routed("quality", "P2").responded(5).resolved(30, first_contact=True).sla("first_response", "met", 240, 300)
        .survey(3, cancelled=True).survey(4),
    ]
