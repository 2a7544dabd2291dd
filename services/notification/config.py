"""Notification configuration: env settings (``NOTIFICATION_*``) and the rules file (TOML).

The rules file says who hears what (``[[rules]]``), who the staff are (``[staff.<id>]``), which
channels exist and where they point (``[channels.<name>]``), and the delivery policy (retries,
quiet hours, rate limits). String values may name environment variables as ``${VAR}`` or
``${VAR:-default}``, so credentials stay out of the file.
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

HERE = Path(__file__).parent
Language = Literal["zh-CN", "en"]
LANGUAGES: tuple[str, ...] = ("zh-CN", "en")


class NotificationSettings(BaseSettings):
    """Service-specific settings (env prefix ``NOTIFICATION_``)."""

    model_config = SettingsConfigDict(env_prefix="NOTIFICATION_", extra="ignore", frozen=True)

    rules_file: Path = HERE / "rules.toml"
    templates_dir: Path = HERE / "templates"
    intake_url: str = "http://127.0.0.1:8001"
    # Key for intake's internal contact endpoint; empty: the first key of HELPDESK_API_KEYS.
    api_key: str = ""
    worker_batch: int = 100
    worker_concurrency: int = 32
    worker_poll_s: float = 1.0
    lease_s: float = 60.0


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


ChannelType = Literal["log", "sms", "smtp", "webhook", "wecom", "dingtalk"]


class ChannelConfig(Strict):
    type: ChannelType
    url: str | None = None  # sms gateway, webhook, robot
    token: str | None = None  # sms gateway bearer token
    secret: str | None = None  # webhook HMAC key; DingTalk signing secret
    host: str = "127.0.0.1"  # smtp
    port: int = 25
    starttls: bool = False
    # access: implicit TLS (SMTPS, port 465); certificates are always verified (ca_file: a private CA)
    ssl: bool = False
    ca_file: str | None = None
    username: str | None = None
    password: str | None = None
    sender: str = "helpdesk@localhost"
    timeout_s: float = 10.0
    # The customer address the channel needs: phone (sms), email (smtp), none (the rest). Set it on a
    # stand-in (a log channel playing sms in local runs) so customers are still chosen by address.
    address: Literal["phone", "email", "none"] | None = None

    @property
    def needs(self) -> str:
        return self.address or {"sms": "phone", "smtp": "email"}.get(self.type, "none")

    @model_validator(mode="after")
    def _endpoint(self) -> ChannelConfig:
        if self.type in ("sms", "webhook", "wecom", "dingtalk") and not self.url:
            raise ValueError(f"a {self.type} channel needs url")
        if self.type == "webhook" and not self.secret:
            raise ValueError("a webhook channel needs secret (HMAC-SHA256 signing key)")
        if self.type == "smtp" and self.username and not (self.starttls or self.ssl):
            raise ValueError("an smtp channel with username logs in only over TLS: set starttls or ssl")
        return self


class StaffConfig(Strict):
    name: str | None = None
    language: Language | None = None
    channels: list[str] = Field(default_factory=lambda: ["log"])
    phone: str | None = None
    email: str | None = None
    rate_limit: int | None = None  # messages per rate window; None: the staff default, 0: unlimited


class RuleConfig(Strict):
    event: str
    template: str
    to: list[str]  # customer | assignee | target (data.to) | a staff id
    fallback: list[str] = Field(default_factory=list)  # used when no `to` recipient resolves
    when: dict[str, Any] = Field(default_factory=dict)  # data fields that must equal these values
    channels: list[str] | None = None  # customer channels for this rule (default: defaults.customer_channels)
    urgent: bool = False  # ignore quiet hours for this rule
    # Customer messages wait out quiet hours unless ``quiet = false``: what answers the customer (the
    # acknowledgement of what they just sent, an agent's reply) goes at once; proactive ones wait.
    quiet: bool = True


class QuietHours(Strict):
    start: time = time(22, 0)
    end: time = time(8, 0)
    enabled: bool = True


class RetryConfig(Strict):
    max_attempts: int = Field(5, ge=1, le=50)
    base_s: float = Field(5.0, gt=0)
    max_s: float = Field(900.0, gt=0)


class RateLimit(Strict):
    customer: int = Field(5, ge=0)  # per window, per customer; 0 = unlimited
    staff: int = Field(60, ge=0)
    window_s: float = Field(3600.0, gt=0)


class Defaults(Strict):
    language: Language = "zh-CN"
    customer_channels: list[str] = Field(default_factory=lambda: ["sms", "email"])
    customer_channel_mode: Literal["first", "all"] = "first"


class RulesConfig(Strict):
    defaults: Defaults = Defaults()
    quiet_hours: QuietHours = QuietHours()
    retry: RetryConfig = RetryConfig()
    rate_limit: RateLimit = RateLimit()
    channels: dict[str, ChannelConfig] = Field(default_factory=lambda: {"log": ChannelConfig(type="log")})
    staff: dict[str, StaffConfig] = Field(default_factory=dict)
    default_staff: StaffConfig = StaffConfig()
    rules: list[RuleConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> RulesConfig:
        used = set(self.defaults.customer_channels) | set(self.default_staff.channels)
        for s in self.staff.values():
            used |= set(s.channels)
        for r in self.rules:
            used |= set(r.channels or [])
        missing = sorted(used - set(self.channels))
        if missing:
            raise ValueError(f"channels used but not configured: {', '.join(missing)}")
        return self

    def events(self) -> list[str]:
        return sorted({r.event for r in self.rules})


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: Any, env: dict[str, str] | None = None) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string of a TOML document."""
    env = os.environ if env is None else env
    if isinstance(value, str):
        return _VAR.sub(lambda m: env.get(m.group(1), m.group(2) or ""), value)
    if isinstance(value, dict):
        return {k: expand_env(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, env) for v in value]
    return value


def load_rules(path: Path, env: dict[str, str] | None = None) -> RulesConfig:
    """Parse and validate the rules file; a bad file refuses the start with the reason."""
    with open(path, "rb") as fh:
        doc = tomllib.load(fh)
    return RulesConfig.model_validate(expand_env(doc, env))
