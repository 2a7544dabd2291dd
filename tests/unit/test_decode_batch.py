"""``decode_batch`` / ``decoded``: a batch's ``prepare`` decodes each delivery once and its handler gets
that value; a delivery that does not decode is left out of the prepare and raises in its handler."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from shared.batching import decode_batch, decoded
from shared.errors import DomainError


class Tx:
    def __init__(self) -> None:
        self.memo: dict[Any, Any] = {}


class Msg:
    def __init__(self, body: bytes) -> None:
        self.body = body


def decode(msg: Msg) -> dict[str, Any]:
    value = orjson.loads(msg.body)  # orjson.JSONDecodeError is a ValueError
    if "n" not in value:
        raise DomainError("n", "Field required")
    return value


def test_each_delivery_is_decoded_once_and_a_bad_one_raises_in_its_handler() -> None:
    calls = []

    def counted(msg: Msg) -> dict[str, Any]:
        calls.append(msg)
        return decode(msg)

    good, bad_json, bad_field, other = Msg(b'{"n": 1}'), Msg(b"{"), Msg(b"{}"), Msg(b'{"n": 2}')
    tx = Tx()
    assert decode_batch([good, bad_json, bad_field, other], tx, counted) == [{"n": 1}, {"n": 2}]
    assert decoded(good, tx, counted) == {"n": 1} and decoded(other, tx, counted) == {"n": 2}
    assert calls.count(good) == 1 and calls.count(other) == 1  # the handlers took the kept values
    with pytest.raises(ValueError):
        decoded(bad_json, tx, counted)
    with pytest.raises(DomainError, match="Field required"):
        decoded(bad_field, tx, counted)
    assert tx.memo == {}  # nothing kept beyond its handler
    assert decoded(good, None, counted) == {"n": 1}  # handled alone: decoded then
