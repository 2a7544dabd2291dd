"""Bootstrap as its own step, a service with only its own role's DSN, and production's refusals."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from shared import bootstrap, production
from shared.settings import Settings
from tests import support
from tests.conftest import RUN_ID, start_service

ROOT = Path(__file__).resolve().parents[2]


def test_production_refuses_every_default_secret_naming_each() -> None:
    from services.intake.app import create_app

    s = Settings(HELPDESK_ENV="production", HELPDESK_API_KEYS="dev:dev-secret:admin,gw:short:channel",
                 AMQP_URL="amqp://guest:guest@127.0.0.1:5672/", HELPDESK_DB_ROLE_PASSWORD="")
    with pytest.raises(production.InsecureConfiguration) as err:
        create_app(s)
    text = str(err.value)
    for named in ("AMQP_URL: the broker's default user 'guest'", "a default password for 'guest'",
                  "HELPDESK_DB_URL: not set", "HELPDESK_DB_BOOTSTRAP", "entry 'dev'", "entry 'gw'",
                  "HELPDESK_CUSTOMER_KEY_SECRET: a default or empty secret"):
        assert named in text, text
    assert "dev-secret" not in text and "short" not in text.replace("shorter", "")  # names, never keys

    weak = Settings(HELPDESK_ENV="production", AMQP_URL="amqp://helpdesk-intake:change-me-helpdesk-intake@mq/helpdesk",
                    HELPDESK_DB_URL="postgresql://helpdesk_intake@db/helpdesk", HELPDESK_BROKER_USERS="guest:admin")
    problems = production.service_problems(weak, "intake")
    assert any("AMQP_URL: a default password for 'helpdesk-intake'" in p for p in problems)
    assert any("HELPDESK_DB_URL: no password for 'helpdesk_intake'" in p for p in problems)
    assert any("HELPDESK_BROKER_USERS" in p for p in problems)

    boot = Settings(HELPDESK_ENV="production", DATABASE_URL="postgresql://postgres:change-me@db/helpdesk")
    problems = production.bootstrap_problems(boot, ["intake", "sla"])
    assert "DATABASE_URL: a default password for 'postgres'" in problems
    assert "HELPDESK_DB_PASSWORD_SLA: empty or a default password for helpdesk_sla" in problems


def test_development_starts_with_defaults() -> None:
    production.check_service(Settings(HELPDESK_API_KEYS="dev:dev-secret:admin"), "intake")  # no raise


def test_bootstrap_is_its_own_step(run_env: dict[str, str]) -> None:
    """``python -m shared.bootstrap`` creates roles, schemas and migrations for every service."""
    db = f"helpdesk_boot_{RUN_ID}"
    env = {**os.environ, "DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{db}"}
    try:
        out = subprocess.run([sys.executable, "-m", "shared.bootstrap"], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        for service in ("intake", "routing", "sla", "notification", "survey"):
            assert f"{service}: " in out.stdout
        again = subprocess.run([sys.executable, "-m", "shared.bootstrap", "intake"], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=120)
        assert again.returncode == 0 and "intake: 0 migration(s) applied" in again.stdout
    finally:
        import asyncio
        asyncio.run(support.drop_database(db))


@pytest.fixture
async def production_intake(run_env: dict[str, str]):  # noqa: ANN201
    """Intake in production mode: its own broker user and role DSN only, strong secrets, and an admin
    DATABASE_URL that points nowhere (so nothing at run time can use it)."""
    from services.intake.app import create_app

    vhost = run_env["AMQP_URL"].rsplit("/", 1)[1]
    user, amqp_pw, db_pw = f"t{RUN_ID}-prod-intake", secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    support.rabbitmqctl("add_user", user, amqp_pw)
    support.rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    admin = Settings()
    os.environ["HELPDESK_DB_PASSWORD_INTAKE"] = db_pw
    try:
        await bootstrap.bootstrap(admin, ["intake"])  # the separate step, with the admin URL
    finally:
        os.environ.pop("HELPDESK_DB_PASSWORD_INTAKE")
    parts = urlsplit(admin.database_url)
    own = urlunsplit(parts._replace(netloc=f"helpdesk_intake:{db_pw}@{parts.hostname}:{parts.port or 5432}"))
    key = secrets.token_urlsafe(32)
    settings = Settings(HELPDESK_ENV="production", AMQP_URL=f"amqp://{user}:{amqp_pw}@127.0.0.1:5672/{vhost}",
                        HELPDESK_DB_URL=own, DATABASE_URL="postgresql://nobody:x@127.0.0.1:1/nowhere",
                        HELPDESK_API_KEYS=f"ops:{key}:admin", HELPDESK_BROKER_USERS=f"{user}:intake",
                        HELPDESK_CUSTOMER_KEY_SECRET=secrets.token_urlsafe(32))
    try:
        async for running in start_service(create_app, settings):
            yield running, key
    finally:
        support.rabbitmqctl("delete_user", user)
        conn = await asyncpg.connect(admin.database_url)  # trust auth again for the suite's other runs
        await conn.execute("ALTER ROLE helpdesk_intake PASSWORD NULL")
        await conn.close()


async def test_a_production_service_runs_on_its_own_role_only(production_intake) -> None:  # noqa: ANN001
    running, key = production_intake
    r = await running.client.get("/healthz")
    assert r.status_code == 200, r.text
    r = await running.client.post("/v1/tickets", headers={"X-API-Key": key}, json={
        "channel": "web", "subject": "退货", "customer": {"name": "周七"}})
    assert r.status_code == 201, r.text
    async with running.rt.pool.acquire() as conn:
        assert await conn.fetchval("SELECT current_user") == "helpdesk_intake"
