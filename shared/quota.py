"""Per-caller quotas (``HELPDESK_TICKET_QUOTA``): ``N/S`` for every key, ``name=N/S`` overrides, 0 unlimited.

``"3000/60,wechat-gw=20000/60,batch=0"``: every API key may create 3,000 tickets a minute over HTTP,
``wechat-gw`` 20,000, ``batch`` any number. Windows are fixed (aligned to the epoch), counted in the
service's database so every replica shares them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_ENTRY = re.compile(r"^(?:(?P<name>[^=\s]+)=)?(?P<n>\d+)(?:/(?P<s>\d+(?:\.\d+)?)s?)?$")


@dataclass(frozen=True)
class Quota:
    limit: int  # per window; 0: unlimited
    window_s: float

    def window(self, now: datetime) -> tuple[datetime, int]:
        """The window ``now`` falls in (its start) and the whole seconds until it ends."""
        epoch = now.timestamp()
        start = math.floor(epoch / self.window_s) * self.window_s
        return datetime.fromtimestamp(start, UTC), math.ceil(start + self.window_s - epoch)


@dataclass(frozen=True)
class Quotas:
    default: Quota
    by_caller: dict[str, Quota]

    def for_caller(self, name: str) -> Quota:
        return self.by_caller.get(name, self.default)


def parse_quotas(text: str) -> Quotas:
    """``"N/S,name=N/S,..."`` (S in seconds, default 60); a bad entry is a ``ValueError`` naming it."""
    default, by_caller = Quota(0, 60.0), {}
    for entry in filter(None, (p.strip() for p in text.split(","))):
        m = _ENTRY.match(entry)
        if not m or (m.group("s") is not None and float(m.group("s")) <= 0):
            raise ValueError(f"HELPDESK_TICKET_QUOTA: entry {entry!r} is not N/S or name=N/S")
        quota = Quota(int(m.group("n")), float(m.group("s") or 60))
        if m.group("name"):
            by_caller[m.group("name")] = quota
        else:
            default = quota
    return Quotas(default, by_caller)


def retry_after(now: datetime, quota: Quota) -> int:
    return quota.window(now)[1]


def keep_windows_since(now: datetime) -> datetime:
    """Counters older than this are of no use (housekeeping deletes them)."""
    return now - timedelta(days=1)
