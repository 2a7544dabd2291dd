"""Channels behind one small interface: ``await channel.send(outgoing)``; raise ``DeliveryError``.

log (local runs), sms (HTTP gateway), smtp (email), webhook (HMAC-SHA256 signed JSON), wecom and
dingtalk (group robots, HTTP JSON). Endpoints and credentials come from the rules file.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Protocol

import httpx
import orjson

from services.notification.config import ChannelConfig, RulesConfig
from services.notification.domain import DeliveryError, Recipient, dingtalk_sign, http_failure, sign_webhook
from services.notification.templates import Rendered

log = logging.getLogger(__name__)
USER_AGENT = "helpdesk-notification/1.0"


@dataclass(frozen=True)
class Outgoing:
    delivery_id: int
    event_id: str
    event_type: str
    ticket_no: str | None
    template: str
    recipient: Recipient
    message: Rendered

    @property
    def key(self) -> str:
        """Stable per delivery: receivers can de-duplicate a resend after a crash on it."""
        return f"{self.event_id}:{self.recipient.key}:{self.delivery_id}"


class Channel(Protocol):
    name: str
    type: str
    address: str  # phone | email | none: what it needs of a customer


    async def send(self, out: Outgoing) -> None: ...


class LogChannel:
    """Writes the message to the log (masked by the log formatter): the default for local runs."""

    def __init__(self, name: str, cfg: ChannelConfig) -> None:
        self.name, self.type, self.address = name, cfg.type, cfg.needs

    async def send(self, out: Outgoing) -> None:
        if self.address == "phone" and not out.recipient.phone:
            raise DeliveryError("recipient has no phone number", permanent=True)
        if self.address == "email" and not out.recipient.email:
            raise DeliveryError("recipient has no email address", permanent=True)
        log.info("notification", extra={"channel": self.name, "ticket_no": out.ticket_no, "template": out.template,
                                        "recipient": out.recipient.masked(self.address), "text": out.message.text})


class _Http:
    def __init__(self, name: str, cfg: ChannelConfig, client: httpx.AsyncClient) -> None:
        self.name, self.type, self.address, self.cfg, self.client = name, cfg.type, cfg.needs, cfg, client

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        try:
            r = await self.client.post(url, content=body, timeout=self.cfg.timeout_s,
                                       headers={"content-type": "application/json", "user-agent": USER_AGENT,
                                                **headers})
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}"[:300]) from None
        if r.status_code >= 300:
            raise http_failure(r.status_code, r.text)
        return r


class SmsGateway(_Http):
    """POST ``{"to", "text", "id"}`` to the gateway with a bearer token."""

    async def send(self, out: Outgoing) -> None:
        if not out.recipient.phone:
            raise DeliveryError("recipient has no phone number", permanent=True)
        body = orjson.dumps({"to": out.recipient.phone, "text": out.message.text, "id": out.key,
                             "ticket_no": out.ticket_no})
        auth = {"authorization": f"Bearer {self.cfg.token}"} if self.cfg.token else {}
        await self._post(self.cfg.url or "", body, {**auth, "idempotency-key": out.key})


class Webhook(_Http):
    """Signed JSON: ``X-Helpdesk-Signature: sha256=HMAC(secret, "<X-Helpdesk-Timestamp>." + body)``."""

    async def send(self, out: Outgoing) -> None:
        body = orjson.dumps({
            "id": out.key, "event_id": out.event_id, "event": out.event_type, "ticket_no": out.ticket_no,
            "template": out.template, "language": out.message.language,
            "recipient": out.recipient.masked(self.address), "subject": out.message.subject, "text": out.message.text,
        })
        ts = str(int(time.time()))
        await self._post(self.cfg.url or "", body, {
            "x-helpdesk-timestamp": ts, "x-helpdesk-signature": sign_webhook(self.cfg.secret or "", ts, body),
            "x-helpdesk-delivery": out.key,
        })


class Robot(_Http):
    """WeCom / DingTalk group robot: a text message; a non-zero ``errcode`` is a failure."""

    async def send(self, out: Outgoing) -> None:
        text = f"{out.message.subject}\n{out.message.text}" if out.message.subject else out.message.text
        url = self.cfg.url or ""
        if self.type == "dingtalk" and self.cfg.secret:
            ms = int(time.time() * 1000)
            url += ("&" if "?" in url else "?") + f"timestamp={ms}&sign={dingtalk_sign(self.cfg.secret, ms)}"
        r = await self._post(url, orjson.dumps({"msgtype": "text", "text": {"content": text}}), {})
        try:
            errcode = int(r.json().get("errcode", 0))
        except (ValueError, AttributeError):
            errcode = 0
        if errcode:
            # 45009 (WeCom) / 130101 (DingTalk) are rate limits: worth retrying; others are not.
            raise DeliveryError(f"{self.type} errcode {errcode}: {r.text[:200]}",
                                permanent=errcode not in (45009, 130101, -1))


class Smtp:
    """SMTP run in a thread (smtplib is blocking): STARTTLS or implicit TLS with the server's
    certificate verified (``ssl.create_default_context``), and a login only over TLS."""

    def __init__(self, name: str, cfg: ChannelConfig) -> None:
        self.name, self.type, self.address, self.cfg = name, cfg.type, cfg.needs, cfg

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.cfg.ca_file)

    def _send_sync(self, msg: EmailMessage) -> None:
        cfg = self.cfg
        if cfg.ssl:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout_s, context=self._context())
        else:
            smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_s)
        with smtp:
            if cfg.starttls and not cfg.ssl:
                smtp.starttls(context=self._context())
            if cfg.username:
                if not (cfg.ssl or cfg.starttls):  # the config refuses this too; never send a password in clear
                    raise DeliveryError("SMTP login refused without TLS", permanent=True)
                smtp.login(cfg.username, cfg.password or "")
            smtp.send_message(msg)

    async def send(self, out: Outgoing) -> None:
        if not out.recipient.email:
            raise DeliveryError("recipient has no email address", permanent=True)
        msg = EmailMessage()
        msg["From"] = self.cfg.sender
        msg["To"] = out.recipient.email
        msg["Subject"] = out.message.subject or out.template
        msg["Message-ID"] = make_msgid(domain="helpdesk")
        msg["X-Helpdesk-Ticket"] = out.ticket_no or ""
        msg["X-Helpdesk-Delivery"] = out.key
        msg.set_content(out.message.text)
        try:
            await asyncio.to_thread(self._send_sync, msg)
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as exc:
            raise DeliveryError(f"SMTP refused: {exc}"[:300], permanent=True) from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"[:300],
                                permanent=500 <= exc.smtp_code < 600) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"SMTP: {type(exc).__name__}: {exc}"[:300]) from None


def build(cfg: RulesConfig, client: httpx.AsyncClient) -> dict[str, Channel]:
    """Every configured channel by name."""
    out: dict[str, Channel] = {}
    for name, c in cfg.channels.items():
        match c.type:
            case "log":
                out[name] = LogChannel(name, c)
            case "sms":
                out[name] = SmsGateway(name, c, client)
            case "webhook":
                out[name] = Webhook(name, c, client)
            case "wecom" | "dingtalk":
                out[name] = Robot(name, c, client)
            case "smtp":
                out[name] = Smtp(name, c)
    return out
