"""Schemathesis against every service's OpenAPI document with a key of each role, all checks on.

The services run on real ports (uvicorn in this process, against the run's broker and database);
the ``st`` CLI (pinned in pyproject) generates the requests. ``make security`` runs it long
(``SECURITY_EXAMPLES``, default there 50, every role); ``make test`` a bounded version.
Prints the cases run and failures found per service and role.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from shared.settings import Settings
from tests import support
from tests.conftest import RUN_ID, Running, start_service
from tests.security.conftest import KEYS

EXAMPLES = int(os.environ.get("SECURITY_EXAMPLES", "3"))
# bounded by default (make test): two roles, few examples; make security: every role, more examples
ROLES = os.environ.get("SECURITY_ROLES", "admin,channel").split(",")
ST = str(Path(sys.executable).with_name("st"))
CONFIG = Path(__file__).with_name("schemathesis.toml")
# Runs per service (extra st arguments each); every check on, except "schema-valid data is accepted"
# where a rule relative to the clock or the calendar cannot be stated in JSON Schema:
# - POST /v1/tickets: received_at may not lie in the future (a ticket "received in 4893" is a 422);
# - review: a period must be a real, already ended calendar period ("2026-13", next month: 422);
# - records' determine: its ``amount`` decimal is documented looser than it is parsed (records to tighten).
NO_ACCEPTANCE = ["--exclude-checks", "positive_data_acceptance"]
LOOSE = ["/v1/tickets", "/v1/tickets/{ticket_no}/determine"]
RUNS = {"intake": [[arg for p in LOOSE for arg in ("--exclude-path", p)],
                   [*(arg for p in LOOSE for arg in ("--include-path", p)), *NO_ACCEPTANCE]],
        "review": [NO_ACCEPTANCE]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
async def isolated(run_env: dict[str, str]) -> AsyncIterator[dict[str, Running]]:
    """Every service on a vhost and a database of its own: schemathesis replaces the roster, patches
    agents and registers tickets at random, which must not reach the rest of the suite."""
    from services.intake.app import create_app as intake_app
    from services.notification.app import create_app as notification_app
    from services.notification.config import NotificationSettings
    from services.review.app import create_app as review_app
    from services.review.config import ReviewSettings
    from services.routing.app import create_app as routing_app
    from services.sla.app import create_app as sla_app
    from services.survey.app import create_app as survey_app

    name = f"helpdesk_sec_{RUN_ID}"
    support.create_vhost(name)
    settings = Settings(AMQP_URL=f"amqp://guest:guest@127.0.0.1:5672/{name}",
                        DATABASE_URL=f"postgresql://postgres@127.0.0.1:5432/{name}", HELPDESK_DB_POOL_MAX=3)
    running: dict[str, Running] = {}
    try:
        async with contextlib.AsyncExitStack() as stack:
            async def start(svc: str, factory) -> None:  # noqa: ANN001
                gen = start_service(factory, settings)
                running[svc] = await gen.__anext__()
                stack.push_async_callback(gen.aclose)

            await start("intake", intake_app)
            transport = httpx.ASGITransport(app=running["intake"].app)
            await start("routing", routing_app)
            await start("sla", sla_app)
            await start("notification", lambda s: notification_app(
                s, options=NotificationSettings(intake_url="http://intake"), intake_transport=transport))
            await start("survey", survey_app)
            await start("review", lambda s: review_app(s, ReviewSettings(snapshot_enabled=False)))
            yield running
    finally:
        support.delete_vhost(name)
        await support.drop_database(name)


@pytest.fixture(scope="module")
async def served(isolated) -> AsyncIterator[dict[str, str]]:  # noqa: ANN001
    """Each service's app on a real loopback port (its lifespan already runs in ``isolated``)."""
    urls, servers = {}, []
    for name, running in isolated.items():
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(running.app, host="127.0.0.1", port=port, lifespan="off",
                                               log_config=None, access_log=False))
        servers.append((server, asyncio.create_task(server.serve())))
        urls[name] = f"http://127.0.0.1:{port}"
    for server, _ in servers:
        while not server.started:
            await asyncio.sleep(0.02)
    yield urls
    for server, task in servers:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)


async def schemathesis(url: str, key: str, report: Path, extra: list[str]) -> tuple[int, list[str], str]:
    """Run ``st`` with every check; returns (cases run, failures, output)."""
    proc = await asyncio.create_subprocess_exec(
        ST, "--config-file", str(CONFIG), "run", f"{url}/openapi.json", "--checks", "all", *extra,
        "-H", f"X-API-Key:{key}",
        "--max-examples", str(EXAMPLES), "--seed", "12", "--workers", "1", "--no-color",
        "--generation-database", "none", "--report", "ndjson", "--report-ndjson-path", str(report),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    cases, failures = 0, []
    for line in report.read_text().splitlines() if report.exists() else []:
        event = json.loads(line)
        for kind, body in event.items():
            if kind == "ScenarioFinished":
                cases += len(body.get("recorder", {}).get("cases", {}))
                for check_list in body.get("recorder", {}).get("checks", {}).values():
                    for check in check_list:
                        if check.get("status") == "FAILURE":
                            failures.append(f"{body['recorder'].get('label')}: {check.get('name')}: "
                                            f"{(check.get('failure_info') or {}).get('failure', {}).get('title', '')}")
    if proc.returncode != 0 and not failures:
        failures.append(f"st exited {proc.returncode}")
    return cases, sorted(set(failures)), text


async def test_schemathesis_every_service_every_role(served) -> None:  # noqa: ANN001
    reports = Path(os.environ.get("SECURITY_REPORT_DIR") or tempfile.mkdtemp(prefix="helpdesk-security-"))
    reports.mkdir(parents=True, exist_ok=True)
    total, found = 0, []
    for name, url in served.items():
        for role in ROLES:
            for i, extra in enumerate(RUNS.get(name, [[]])):
                cases, failures, text = await schemathesis(url, KEYS[role], reports / f"{name}-{role}-{i}.ndjson",
                                                         extra)
                total += cases
                print(f"schemathesis {name} as {role} ({' '.join(extra) or 'everything'}): {cases} cases, "
                      f"{len(failures)} failures")
                found += [f"{name} as {role}: {f}" for f in failures]
                (reports / f"{name}-{role}-{i}.txt").write_text(text)
    print(f"schemathesis: {total} cases, {len(found)} failures (reports in {reports})")
    assert total > 0
    assert not found, "\n".join(found)
