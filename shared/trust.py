"""Who may say what on the broker: every message names its publisher, and consumers check it.

RabbitMQ refuses a message whose ``user_id`` property is not the login that published it, so
``user_id`` tells who really sent a message. Services set it on all they publish
(``publish_options``); consumers accept a message only when that user may send it
(``Trust.refusal``, called by ``shared.consumer``), else it is dead-lettered with the reason:

* ``helpdesk.events``: the event's ``source`` (``/helpdesk/<service>``) must be a service the
  user is granted — a gateway, or a compromised survey, cannot speak as intake;
* ``helpdesk.intake`` (``intake.<channel>``): the user needs ``channel`` or ``channel.<channel>``;
* ``helpdesk.commands`` (``ticket.<action>``): the user needs the API role the action needs
  (``agent``; ``supervisor`` for close and reprioritize).

``HELPDESK_BROKER_USERS`` maps users to grants: ``user:grant+grant,...``; a grant is a service
name (``intake``), ``channel``, ``channel.<name>``, an API role (``agent``, ``supervisor``) or
``admin`` (anything: operators replaying dead letters). See README "Broker users".
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson

from shared.auth import Principal, command_roles
from shared.broker_users import trust_mapping

EVENTS, INTAKE, COMMANDS = "helpdesk.events", "helpdesk.intake", "helpdesk.commands"
# The users of deploy/rabbitmq/definitions.json (each service for its own events, each gateway for its
# channel, the operator for all), and ``guest`` (the local broker's default login, refused in
# production) for everything, so `make run` and the suite work on a bare local broker.
DEFAULT_USERS = trust_mapping() + ",guest:admin"


def url_user(amqp_url: str) -> str:
    """The login in an ``amqp://user:pass@host/vhost`` URL (``guest`` when none is given)."""
    return unquote(urlsplit(amqp_url).username or "guest")


def parse_users(text: str) -> dict[str, frozenset[str]]:
    """``user:grant+grant,...`` -> user -> grants; an entry without grants is a ``ValueError`` naming it."""
    users: dict[str, frozenset[str]] = {}
    for entry in filter(None, (p.strip() for p in text.split(","))):
        user, sep, grants = entry.rpartition(":")
        found = frozenset(g.strip() for g in grants.split("+") if g.strip())
        if not sep or not user or not found:
            raise ValueError(f"HELPDESK_BROKER_USERS: entry {entry!r} is not user:grant+grant")
        users[user] = found
    return users


def users_for(settings: Any) -> dict[str, frozenset[str]]:
    """The mapping a service believes: ``HELPDESK_BROKER_USERS``; the default without ``guest`` in production."""
    users = parse_users(settings.broker_users)
    if settings.env == "production" and settings.broker_users == DEFAULT_USERS:
        users.pop("guest", None)
    return users


@dataclass(frozen=True)
class Trust:
    """The broker users a service believes, and what each may publish."""

    users: dict[str, frozenset[str]]
    publisher: str  # this service's own login, set as ``user_id`` on what it publishes

    def grants(self, user: str | None) -> frozenset[str]:
        return self.users.get(user or "", frozenset())

    def refusal(self, exchange: str, routing_key: str, user: str | None, body: bytes) -> str | None:
        """Why a message may not be acted on (``None``: it may)."""
        if exchange not in (EVENTS, INTAKE, COMMANDS):
            return None
        if not user:
            return f"untrusted publisher: no user_id on a message to {exchange}"
        grants = self.grants(user)
        if "admin" in grants:
            return None
        if exchange == EVENTS:
            return self._event_refusal(user, grants, body)
        if exchange == INTAKE:
            channel = routing_key.removeprefix("intake.")
            if grants & {"channel", f"channel.{channel}"}:
                return None
            return f"untrusted publisher: broker user {user!r} may not register tickets for channel {channel!r}"
        action = routing_key.removeprefix("ticket.")
        needed = command_roles(action)
        if Principal(user, grants & {"agent", "supervisor"}).has_any(needed):
            return None
        return f"untrusted publisher: broker user {user!r} needs role {' or '.join(needed)} for ticket.{action}"

    @staticmethod
    def _event_refusal(user: str, grants: frozenset[str], body: bytes) -> str | None:
        try:
            source = orjson.loads(body).get("source")
        except (orjson.JSONDecodeError, AttributeError):
            return None  # not an event at all: the handler dead-letters it with the parse error
        service = str(source or "").removeprefix("/helpdesk/")
        if service in grants:
            return None
        return f"untrusted publisher: source {source!r} was published by broker user {user!r}"


_BY_BROKER: weakref.WeakKeyDictionary[Any, Trust] = weakref.WeakKeyDictionary()


def register(broker: Any, trust: Trust) -> None:
    """Attach ``trust`` to ``broker``: its consumers check, and its publishers name, with it."""
    _BY_BROKER[broker] = trust


def of(broker: Any) -> Trust | None:
    return _BY_BROKER.get(broker)


def publish_options(broker: Any) -> dict[str, str]:
    """Keyword arguments for ``broker.publish``: the ``user_id`` RabbitMQ checks (empty if unregistered)."""
    trust = of(broker)
    return {"user_id": trust.publisher} if trust else {}
