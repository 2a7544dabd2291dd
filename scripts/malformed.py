"""Malformed bodies for the chaos run: random bytes, wrong types, missing fields, huge fields,
bad UTF-8, non-objects, unknown fields and commands. None of them may become a ticket."""

from __future__ import annotations

import os
import random

import orjson

KINDS = ("random_bytes", "bad_utf8", "wrong_types", "missing_fields", "huge_field", "not_object",
         "unknown_field", "empty", "bad_command", "unknown_command")


def _ticket(**over: object) -> dict:
    body: dict = {"channel": "web", "customer": {"name": "坏消息"}, "subject": "无法登录"}
    body.update(over)
    return body


def body(kind: str, rnd: random.Random, *, huge_bytes: int) -> tuple[str, bytes]:
    """``(target, body)``; target ``ticket`` (intake message / POST /v1/tickets) or ``command:<action>``."""
    if kind == "random_bytes":
        return "ticket", os.urandom(rnd.randint(1, 3000))
    if kind == "bad_utf8":
        return "ticket", b'{"channel":"web","customer":{"name":"\xff\xfe\xfd"},"subject":"\xc3\x28"}'
    if kind == "wrong_types":
        return "ticket", orjson.dumps(rnd.choice([
            _ticket(customer="not an object"), _ticket(channel=5), _ticket(urgency=["urgent"]),
            _ticket(customer={"name": 42}), _ticket(received_at="yesterday"), _ticket(impact={"a": 1}),
            _ticket(customer={"name": "x", "phone": "not-a-phone"}), _ticket(channel="fax"),
        ]))
    if kind == "missing_fields":
        choice = rnd.choice([{"channel": "web", "subject": "x"}, {"channel": "web", "customer": {}, "subject": "x"},
                             {"customer": {"name": "x"}}])
        return "ticket", orjson.dumps(choice)
    if kind == "huge_field":
        return "ticket", orjson.dumps(_ticket(description="长" * (huge_bytes // 3)))
    if kind == "not_object":
        return "ticket", orjson.dumps(rnd.choice([[1, 2, 3], "a string", None, 12, True]))
    if kind == "unknown_field":
        return "ticket", orjson.dumps(_ticket(bogus_field=1))
    if kind == "empty":
        return "ticket", b""
    if kind == "bad_command":
        return "command:resolve", orjson.dumps(rnd.choice([
            {"ticket_no": "20000101000001", "actor": "a"},  # no outcome / solution
            {"ticket_no": "not-a-number", "actor": "a", "outcome": "resolved", "solution": "replaced PWR-01"},
            {"ticket_no": "20000101000001", "actor": "a", "outcome": "maybe", "solution": "replaced PWR-01"},
            {"ticket_no": "20000101000001", "actor": "a", "outcome": "resolved", "solution": "done"},
        ]))
    if kind == "unknown_command":
        return "command:explode", orjson.dumps({"ticket_no": "20000101000001", "actor": "a"})
    raise ValueError(kind)
