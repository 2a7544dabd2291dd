"""The broker's users: one per service and per outside party, with just the permissions each needs.

``python -m shared.broker_users > deploy/rabbitmq/definitions.json`` writes the RabbitMQ definitions
(users, the ``helpdesk`` vhost, permissions and topic permissions) that compose and k8s load. Every
password comes from ``HELPDESK_BROKER_PASSWORD_<USER>`` (user upper-cased, ``-`` as ``_``); without
it the demo password ``change-me-<user>`` is used, which ``HELPDESK_ENV=production`` refuses.

* a service (``helpdesk-<service>``) declares its own queues (``<service>.*``) and the contract
  exchanges, reads what it binds, writes ``helpdesk.events`` only with its own routing keys;
* a channel gateway (``gw-<channel>``) only publishes to ``helpdesk.intake`` with ``intake.<channel>``:
  it can declare, bind and read nothing (so it cannot tap raw tickets);
* an enterprise subscriber (``sub-<name>``) only declares, binds and reads its own ``sub-<name>.*``
  queues, bound to ``helpdesk.events`` with ticket/sla/survey keys; it publishes nothing;
* ``helpdesk-ops`` is the operator (management UI, dead-letter replay): everything.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any

VHOST = "helpdesk"
CONTRACT = r"helpdesk\.(intake|commands|events|events\.log|dlx|dead-letters)"  # events.log: the event stream
CHANNELS = ("phone", "chat", "email", "app", "wechat", "web", "onsite")
# Routing keys each service publishes on helpdesk.events.
EVENT_KEYS = {
    "intake": r"^(ticket|customer)\..+$",
    "routing": r"^ticket\.(routed|escalated)$",
    "sla": r"^sla\..+$",
    "notification": r"^notification\..+$",
    "survey": r"^survey\..+$",
    "review": r"^review\..+$",
}
# Exchanges each service binds its queues to (and so reads).
READS = {"intake": "intake|commands|events|dlx", "review": r"events|events\.log|dlx"}  # review replays the stream


@dataclass(frozen=True)
class BrokerUser:
    name: str
    configure: str
    write: str
    read: str
    topics: dict[str, tuple[str, str]] = field(default_factory=dict)  # exchange -> (write, read)
    tags: tuple[str, ...] = ()
    trust: str = ""  # what shared.trust grants it (HELPDESK_BROKER_USERS)


def service_user(service: str) -> BrokerUser:
    own = rf"{service}\..+"
    reads = READS.get(service, "events|dlx")
    return BrokerUser(
        f"helpdesk-{service}",
        configure=rf"^({CONTRACT}|{own})$",
        write=rf"^(helpdesk\.(events|events\.log|dlx|dead-letters)|{own})$",
        read=rf"^(helpdesk\.({reads})|{own})$",
        topics={"helpdesk.events": (EVENT_KEYS[service], ".*")},
        trust=service,
    )


def users() -> list[BrokerUser]:
    out = [service_user(s) for s in EVENT_KEYS]
    out += [BrokerUser(f"gw-{c}", configure="^$", write=r"^helpdesk\.intake$", read="^$",
                       topics={"helpdesk.intake": (rf"^intake\.{c}$", "^$")}, trust=f"channel.{c}")
            for c in CHANNELS]
    out.append(BrokerUser("sub-erp", configure=r"^sub-erp\..+$", write=r"^sub-erp\..+$",
                          read=r"^(helpdesk\.events|sub-erp\..+)$",
                          topics={"helpdesk.events": ("^$", r"^(ticket|sla|survey)\..+$")}))
    out.append(BrokerUser("helpdesk-ops", configure=".*", write=".*", read=".*", tags=("administrator",),
                          trust="admin"))
    return out


def trust_mapping(prefix: str = "") -> str:
    """``HELPDESK_BROKER_USERS`` for these users (``prefix`` on every name, as the tests use)."""
    return ",".join(f"{prefix}{u.name}:{u.trust}" for u in users() if u.trust)


def password_env(user: str) -> str:
    return "HELPDESK_BROKER_PASSWORD_" + user.upper().replace("-", "_")


def demo_password(user: str) -> str:
    return f"change-me-{user}"


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256``: base64(salt + sha256(salt + password))."""
    salt = salt if salt is not None else os.urandom(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def definitions(env: dict[str, str] | None = None) -> dict[str, Any]:
    env = os.environ if env is None else env
    us = users()
    return {
        "vhosts": [{"name": VHOST}],
        "users": [{"name": u.name, "password_hash": password_hash(env.get(password_env(u.name)) or
                                                                   demo_password(u.name)),
                   "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": list(u.tags)} for u in us],
        "permissions": [{"user": u.name, "vhost": VHOST, "configure": u.configure, "write": u.write,
                         "read": u.read} for u in us],
        "topic_permissions": [{"user": u.name, "vhost": VHOST, "exchange": ex, "write": w, "read": r}
                              for u in us for ex, (w, r) in u.topics.items()],
    }


def main() -> None:
    json.dump(definitions(), sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
