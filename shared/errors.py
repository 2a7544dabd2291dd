"""Errors that decide what happens to a request or message (see STYLE.md, "errors decide the ack")."""

from __future__ import annotations


class DomainError(Exception):
    """Invalid input or an impossible request: a 4xx over HTTP, a dead letter over AMQP.

    Never retried: the same input would fail the same way.
    """

    status = 422

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "problem": self.problem}


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    """The request is valid but the current state forbids it (e.g. resolving a closed ticket)."""

    status = 409


class TooManyRequests(DomainError):
    """Over a quota: 429 with ``Retry-After`` (seconds until the window ends)."""

    status = 429

    def __init__(self, field: str, problem: str, *, retry_after_s: int) -> None:
        super().__init__(field, problem)
        self.headers = {"Retry-After": str(max(1, retry_after_s))}
