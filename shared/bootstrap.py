"""Bootstrap, its own step: ``python -m shared.bootstrap [service ...]`` (``make migrate``; the k8s Job
``helpdesk-bootstrap``; compose's one-shot ``bootstrap``).

With the admin ``DATABASE_URL`` it creates the database, each service's role (password from
``HELPDESK_DB_PASSWORD_<SERVICE>``, else ``HELPDESK_DB_ROLE_PASSWORD``) and the schema that role
alone owns, then applies each service's migrations as that role. The services then run with only
their own ``HELPDESK_DB_URL``; none of them needs the admin URL.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

import asyncpg

from shared import db, logs, production
from shared.run import ROOT, available
from shared.settings import Settings

log = logging.getLogger(__name__)


def migrations_dir(service: str) -> Path:
    return ROOT / "services" / service / "migrations"


async def bootstrap(settings: Settings, services: list[str]) -> dict[str, list[str]]:
    """Database, roles, schemas and migrations for ``services``; returns the migrations applied."""
    applied = {}
    for service in services:
        await db.bootstrap(settings, service)
        conn = await asyncpg.connect(db.role_dsn(settings.model_copy(update={"db_url": ""}), service))
        try:
            applied[service] = await db.migrate(conn, service, migrations_dir(service))
        finally:
            await conn.close()
        log.info("bootstrapped", extra={"schema": service, "applied": len(applied[service])})
    return applied


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("services", nargs="*", help="services to bootstrap (default: every service)")
    args = parser.parse_args()
    settings = Settings()
    logs.configure("bootstrap", settings.log_level)
    production.check_bootstrap(settings, args.services or available())
    applied = asyncio.run(bootstrap(settings, args.services or available()))
    for service, versions in applied.items():
        print(f"{service}: {len(versions)} migration(s) applied" + (f" ({', '.join(versions)})" if versions else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
