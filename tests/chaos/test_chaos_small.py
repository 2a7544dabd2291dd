"""The small chaos run (``scripts.chaos`` with ``Config.small()``): a few hundred tickets, half of them
resolved, one ``kill -9`` and restart of every service, malformed bodies over AMQP and HTTP. It runs
the services as real processes in its own vhost and database and never restarts RabbitMQ or
Postgres (other suites share them). The full run is ``make chaos``."""

from __future__ import annotations

import pytest

from scripts.chaos import Config, run
from shared.run import available

pytestmark = pytest.mark.integration  # a stack of real processes: not a unit test


async def test_small_chaos_run_loses_and_doubles_nothing() -> None:
    report = await run(Config.small())

    assert report.problems == []
    assert report.counts["kills"] == dict.fromkeys(available(), 1)
    assert report.counts["infra"] == []
    assert report.counts["tickets stored exactly once (intake DB)"] == 0
    assert report.counts["malformed AMQP dead-lettered with a reason"] == 0
    assert report.counts["malformed HTTP refused with 4xx and a reason"] == 0
