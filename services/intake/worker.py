"""Intake's background work, registered as loops on the runtime (``rt.every``):

* hourly housekeeping — the counters and quota windows that have run out (``usecases.housekeeping``);
* the daily privacy purge, run hourly so a restart never postpones it by a day: what is due is
  counted in days after close (``privacy.daily``).

Each is a ``shared.dueloop.Every``: the first run one interval after the start, a failure logged and
retried with backoff, nothing after the stop. Every replica runs them; the work is idempotent.
"""

from __future__ import annotations

from datetime import UTC, datetime

from shared.dueloop import HOUR_S
from shared.runtime import Runtime

from . import privacy, usecases


def register(rt: Runtime) -> None:
    rt.every(HOUR_S, lambda r: usecases.housekeeping(r.pool, tz=r.settings.tz), name="intake housekeeping")
    rt.every(HOUR_S, lambda r: privacy.daily(r, now=datetime.now(UTC)), name="intake privacy purge")
