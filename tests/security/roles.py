"""The role table: which roles each route lets through (the README's "Roles" table says the same).

``None``: a public route (no key). A route of a service that is not in the table fails
``test_roles.test_table_covers_every_route``: a new route must be given its roles here.
"""

from __future__ import annotations

ROLES = ("channel", "agent", "supervisor", "contacts", "analyst", "admin")
PUBLIC = None

READ = {"agent", "analyst"}
LIFECYCLE = {"agent"}  # supervisor includes agent
SUPERVISOR = {"supervisor"}
REVIEW_READ = {"analyst", "supervisor"}
ADMIN = {"admin"}

# (service, method, path template) -> roles allowed (admin always is)
TABLE: dict[tuple[str, str, str], set[str] | None] = {
    ("intake", "POST", "/v1/tickets"): {"channel"},
    ("intake", "GET", "/v1/tickets/{ticket_no}"): {"channel", "agent", "analyst"},
    ("intake", "GET", "/v1/tickets/{ticket_no}/contact"): {"contacts"},
    ("intake", "POST", "/v1/contacts:lookup"): {"contacts"},  # a batch of deliveries (notification)
    ("routing", "GET", "/v1/roster"): READ,
    ("routing", "PUT", "/v1/roster"): SUPERVISOR,
    ("routing", "GET", "/v1/agents/{agent_id}"): READ,
    ("routing", "PATCH", "/v1/agents/{agent_id}"): SUPERVISOR,
    ("routing", "GET", "/v1/queue"): READ,
    ("routing", "GET", "/v1/assignments/{ticket_no}"): READ,
    ("routing", "GET", "/v1/rules"): READ,
    ("sla", "GET", "/v1/sla/{ticket_no}"): READ,
    ("notification", "GET", "/v1/deliveries"): READ,
    ("survey", "GET", "/v1/surveys"): READ,
    ("survey", "GET", "/s/{token}"): PUBLIC,
    ("survey", "POST", "/s/{token}"): PUBLIC,
    ("survey", "GET", "/s/{token}/thanks"): PUBLIC,
    # the customer's progress page (customer): the token is the credential
    ("intake", "GET", "/t/{token}"): PUBLIC,
    ("intake", "POST", "/t/{token}/reply"): PUBLIC,
    ("intake", "POST", "/t/{token}/callback"): PUBLIC,
    ("intake", "POST", "/t/{token}/confirm"): PUBLIC,
    # review: reads for analysts and supervisors, improvement actions and the snapshot for supervisors
    ("review", "GET", "/v1/reviews/actions"): REVIEW_READ,
    ("review", "POST", "/v1/reviews/actions"): SUPERVISOR,
    ("review", "PATCH", "/v1/reviews/actions/{action_id}"): SUPERVISOR,
    ("review", "GET", "/v1/reviews/{period}"): REVIEW_READ,
    ("review", "GET", "/v1/reviews/{period}/tickets"): REVIEW_READ,
    ("review", "POST", "/v1/reviews/{period}/snapshot"): SUPERVISOR,
    ("review", "GET", "/reviews/{period}"): REVIEW_READ,  # the page (key in the header, or ?key=)
    # privacy: a customer's key, erasure and export are an admin's
    ("intake", "POST", "/v1/customers/key"): ADMIN,
    ("intake", "POST", "/v1/customers/{customer_key}/erase"): ADMIN,
    ("intake", "GET", "/v1/customers/{customer_key}/export"): ADMIN,
    ("notification", "GET", "/v1/customers/{customer_key}/export"): ADMIN,
    ("survey", "GET", "/v1/customers/{customer_key}/export"): ADMIN,
}
for _svc in ("intake", "routing", "sla", "notification", "survey", "review"):
    TABLE[(_svc, "GET", "/healthz")] = PUBLIC
    TABLE[(_svc, "GET", "/metrics")] = PUBLIC

# intake's POST /v1/tickets/{ticket_no}/{action}, per action
COMMAND_ROLES: dict[str, set[str]] = {
    "respond": LIFECYCLE, "progress": LIFECYCLE, "wait": LIFECYCLE, "resume": LIFECYCLE,
    "escalate": LIFECYCLE, "resolve": LIFECYCLE, "reopen": LIFECYCLE,
    "close": SUPERVISOR, "reprioritize": SUPERVISOR,
    "diagnose": LIFECYCLE, "schedule": LIFECYCLE, "verify": LIFECYCLE, "determine": LIFECYCLE, "revisit": LIFECYCLE,
}


def allowed(roles: set[str] | None, role: str | None) -> bool:
    """Whether a key holding only ``role`` (``None``: no key) passes a route needing one of ``roles``."""
    if roles is None:
        return True
    if role is None:
        return False
    return role == "admin" or role in roles or (role == "supervisor" and "agent" in roles)


# every lifecycle command is documented (and checked) as a path of its own
for _action, _roles in COMMAND_ROLES.items():
    TABLE[("intake", "POST", f"/v1/tickets/{{ticket_no}}/{_action}")] = _roles
