"""shared.trust: which broker user may publish what (pure; the broker test is tests/security/test_broker.py)."""

import orjson
import pytest

from shared.auth import parse_api_keys
from shared.trust import DEFAULT_USERS, Trust, parse_users, url_user

T = Trust(parse_users("helpdesk-intake:intake,helpdesk-survey:survey,gw-wechat:channel.wechat,"
                      "gw-any:channel,erp:agent,lead:supervisor,ops:admin"), publisher="helpdesk-intake")


def ev(source: str) -> bytes:
    return orjson.dumps({"source": source, "type": "ticket.progressed"})


def test_events_only_from_the_source_service_user():
    assert T.refusal("helpdesk.events", "ticket.progressed", "helpdesk-intake", ev("/helpdesk/intake")) is None
    assert "helpdesk-survey" in T.refusal("helpdesk.events", "ticket.progressed", "helpdesk-survey",
                                          ev("/helpdesk/intake"))
    assert "no user_id" in T.refusal("helpdesk.events", "ticket.progressed", None, ev("/helpdesk/intake"))
    assert T.refusal("helpdesk.events", "x", "stranger", ev("/helpdesk/intake")).startswith("untrusted publisher")
    assert T.refusal("helpdesk.events", "x", "ops", ev("/helpdesk/sla")) is None


def test_tickets_only_from_their_channel_and_commands_by_role():
    assert T.refusal("helpdesk.intake", "intake.wechat", "gw-wechat", b"{}") is None
    assert "'web'" in T.refusal("helpdesk.intake", "intake.web", "gw-wechat", b"{}")
    assert T.refusal("helpdesk.intake", "intake.web", "gw-any", b"{}") is None
    assert T.refusal("helpdesk.commands", "ticket.respond", "erp", b"{}") is None
    assert "supervisor" in T.refusal("helpdesk.commands", "ticket.close", "erp", b"{}")
    assert T.refusal("helpdesk.commands", "ticket.close", "lead", b"{}") is None
    assert "agent" in T.refusal("helpdesk.commands", "ticket.respond", "gw-wechat", b"{}")
    assert T.refusal("helpdesk.dlx", "anything", None, b"") is None  # only the three contract inputs


def test_mapping_parse_and_url_user():
    assert parse_users(DEFAULT_USERS)["helpdesk-notification"] == {"notification"}
    with pytest.raises(ValueError, match="'nogrants'"):
        parse_users("nogrants")
    assert url_user("amqp://helpdesk-intake:pw@h:5672/helpdesk") == "helpdesk-intake"
    assert url_user("amqps://h/") == "guest"


@pytest.mark.parametrize("text, named", [
    ("gw:k1", "'gw'"), ("gw:k1:", "'gw'"), ("gw:k1:root", "'root'"), ("a:k:admin,a:k2:agent", "'a'"),
])
def test_api_key_entries_refused_by_name(text, named):
    with pytest.raises(ValueError, match=named):
        parse_api_keys(text)
