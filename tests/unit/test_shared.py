import logging

import pytest

from shared.envelope import CloudEvent, new_event
from shared.logs import JsonFormatter
from shared.settings import Settings


def test_envelope_shape_and_roundtrip():
    e = new_event(service="intake", type="ticket.created", ticket_no="20261123000001", seq=1, data={"a": 1})
    doc = e.model_dump(mode="json")
    assert doc["specversion"] == "1.0" and doc["source"] == "/helpdesk/intake" and doc["subject"] == "20261123000001"
    assert doc["datacontenttype"] == "application/json" and doc["data"] == {"a": 1, "ticket_no": "20261123000001", "seq": 1}
    assert CloudEvent.from_bytes(e.to_bytes()) == e


def test_api_keys_parse():
    s = Settings(**{"HELPDESK_API_KEYS": "dev:dev-secret:admin, desk:k2:agent+supervisor"})
    assert s.api_key_map == {"dev-secret": "dev", "k2": "desk"}
    assert s.api_principals["k2"].roles == {"agent", "supervisor"}
    with pytest.raises(ValueError, match="'nokey'"):
        Settings(**{"HELPDESK_API_KEYS": "nokey"})


def test_json_logs_mask_pii():
    record = logging.makeLogRecord({"msg": "customer 13812345678 wrote from a@b.com", "levelno": 20,
                                    "levelname": "INFO", "phone": "13900001111"})
    line = JsonFormatter("intake").format(record)
    assert "13812345678" not in line and "13900001111" not in line and "a@b.com" not in line
    assert '"service":"intake"' in line


def test_role_dsn_keeps_the_unix_socket_of_a_co_located_database(monkeypatch):
    from shared import db

    monkeypatch.delenv("HELPDESK_DB_PASSWORD_SLA", raising=False)
    tcp = Settings(database_url="postgresql://postgres@127.0.0.1:5432/helpdesk", db_role_password="")
    assert db.role_dsn(tcp, "sla") == "postgresql://helpdesk_sla@127.0.0.1:5432/helpdesk"
    sock = Settings(database_url="postgresql://postgres@/helpdesk?host=/var/run/postgresql", db_role_password="")
    assert db.role_dsn(sock, "sla") == "postgresql://helpdesk_sla@/helpdesk?host=/var/run/postgresql"
    bare = Settings(database_url="postgresql://postgres@/helpdesk", db_role_password="")  # no host: TCP to loopback
    assert db.role_dsn(bare, "sla") == "postgresql://helpdesk_sla@127.0.0.1/helpdesk"
