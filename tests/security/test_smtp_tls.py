"""The SMTP channel verifies the server's certificate and never logs in without TLS (a real aiosmtpd
server with STARTTLS and a certificate made for this test)."""

from __future__ import annotations

import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from services.notification.channels import Outgoing, Smtp
from services.notification.config import ChannelConfig
from services.notification.domain import DeliveryError, Recipient
from services.notification.templates import Rendered


class _Inbox:
    def __init__(self) -> None:
        self.mails: list[bytes] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001, N802
        self.mails.append(envelope.content)
        return "250 OK"


def _auth(server, session, envelope, mechanism, auth_data) -> AuthResult:  # noqa: ANN001
    return AuthResult(success=auth_data.login == b"helpdesk" and auth_data.password == b"s3cret-smtp")


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path, _Inbox]]:
    d = tmp_path_factory.mktemp("smtp-tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True,
                            authenticator=_auth, auth_require_tls=True)
    controller.start()
    yield port, cert, inbox
    controller.stop()


def _out() -> Outgoing:
    return Outgoing(delivery_id=1, event_id="e1", event_type="ticket.created", ticket_no="20260101000001",
                    template="ticket_received", recipient=Recipient(key="customer", email="kh@example.com"),
                    message=Rendered(language="zh-CN", subject="工单已受理", text="您的工单已受理"))


def _channel(port: int, **cfg) -> Smtp:  # noqa: ANN003
    return Smtp("email", ChannelConfig(type="smtp", host="127.0.0.1", port=port, sender="support@helpdesk.test", **cfg))


async def test_an_untrusted_certificate_is_refused(tls_server) -> None:  # noqa: ANN001
    port, _, inbox = tls_server
    with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        await _channel(port, starttls=True, username="helpdesk", password="s3cret-smtp").send(_out())
    assert inbox.mails == []


async def test_a_verified_server_gets_the_login_and_the_mail(tls_server) -> None:  # noqa: ANN001
    port, cert, inbox = tls_server
    await _channel(port, starttls=True, ca_file=str(cert), username="helpdesk", password="s3cret-smtp").send(_out())
    assert len(inbox.mails) == 1 and b"kh@example.com" in inbox.mails[0]


def test_a_login_without_tls_is_refused_by_the_config() -> None:
    with pytest.raises(ValueError, match="only over TLS"):
        ChannelConfig(type="smtp", host="mail.example.com", username="helpdesk", password="x")
