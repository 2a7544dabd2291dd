"""Database plumbing: bootstrap (database, per-service role and schema), pools, migrations.

Each service owns one schema named after it and connects as ``helpdesk_<service>``, a role
that owns that schema and has no rights anywhere else. Bootstrap (``python -m shared.bootstrap``)
needs the admin URL (``DATABASE_URL``); everything after it runs as the service role, which in
production is all a service is given (``HELPDESK_DB_URL``).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import asyncpg

from shared.settings import Settings

log = logging.getLogger(__name__)
COMMON_SQL = Path(__file__).parent / "sql"


def role_name(service: str) -> str:
    return f"helpdesk_{service}"


def _with_db(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


def database_name(url: str) -> str:
    return unquote(urlsplit(url).path.lstrip("/")) or "postgres"


def role_password(settings: Settings, service: str) -> str:
    """``helpdesk_<service>``'s password: ``HELPDESK_DB_PASSWORD_<SERVICE>``, else the shared
    ``HELPDESK_DB_ROLE_PASSWORD`` (empty works with trust auth, for a developer)."""
    return os.environ.get(f"HELPDESK_DB_PASSWORD_{service.upper()}") or settings.db_role_password


def role_dsn(settings: Settings, service: str) -> str:
    """The service's own DSN: ``HELPDESK_DB_URL`` when given (production: the only database secret a
    service holds), else the admin URL with the user and password swapped for its role. Query
    parameters (``sslmode=verify-full&sslrootcert=...``) are kept."""
    if settings.db_url:
        user = unquote(urlsplit(settings.db_url).username or "")
        if user != role_name(service):
            raise ValueError(f"HELPDESK_DB_URL connects as {user!r}; {service} connects as {role_name(service)!r}")
        return settings.db_url
    parts = urlsplit(settings.database_url)
    # no host in the URL but ?host=/run/postgresql: the server's unix socket (a co-located database),
    # which costs each statement less than a TCP round trip
    socket = parts.hostname is None and any(q.startswith("host=") for q in parts.query.split("&"))
    host = parts.hostname or ("" if socket else "127.0.0.1")
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    cred = quote(role_name(service))
    if password := role_password(settings, service):
        cred += ":" + quote(password, safe="")
    return urlunsplit(parts._replace(netloc=f"{cred}@{host}{port}"))


def _ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"unsafe SQL identifier {name!r}")
    return '"' + name + '"'


async def ensure_database(settings: Settings) -> None:
    """Create the database named in ``DATABASE_URL`` if it does not exist (contract default)."""
    name = database_name(settings.database_url)
    conn = await asyncpg.connect(_with_db(settings.database_url, "postgres"))
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            try:
                await conn.execute(f"CREATE DATABASE {_ident(name)}")
                log.info("created database", extra={"database": name})
            except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
                pass  # another service created it at the same moment
    finally:
        await conn.close()


async def ensure_role_and_schema(settings: Settings, service: str) -> None:
    """Create ``helpdesk_<service>`` (LOGIN, no other rights) and the schema it alone owns."""
    role, schema = role_name(service), service
    conn = await asyncpg.connect(settings.database_url)
    try:
        # Serialise concurrent bootstraps: CREATE ROLE/SCHEMA race otherwise.
        await conn.execute("SELECT pg_advisory_lock(hashtext('helpdesk.bootstrap'))")
        exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
        verb = "ALTER" if exists else "CREATE"
        password = role_password(settings, service).replace("'", "''")
        pw = f"PASSWORD '{password}'" if password else "PASSWORD NULL"
        await conn.execute(
            f"{verb} ROLE {_ident(role)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT {pw}"
        )
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_ident(schema)} AUTHORIZATION {_ident(role)}")
        await conn.execute(f"ALTER SCHEMA {_ident(schema)} OWNER TO {_ident(role)}")
        await conn.execute(f"REVOKE ALL ON SCHEMA {_ident(schema)} FROM PUBLIC")
        await conn.execute(f"REVOKE CREATE ON SCHEMA public FROM {_ident(role)}")
        await conn.execute(f"ALTER ROLE {_ident(role)} SET search_path = {_ident(schema)}")
        await conn.execute("SELECT pg_advisory_unlock(hashtext('helpdesk.bootstrap'))")
    finally:
        await conn.close()


async def bootstrap(settings: Settings, service: str) -> None:
    await ensure_database(settings)
    await ensure_role_and_schema(settings, service)


async def _keep_session(_: asyncpg.Connection) -> None:
    """Services keep no session state on pooled connections (no LISTEN, SET or held locks there),
    so the round trip of asyncpg's default reset query on every release is skipped."""


async def create_pool(settings: Settings, service: str, *, max_size: int | None = None) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        role_dsn(settings, service),
        min_size=1,
        max_size=max_size or settings.db_pool_max,
        reset=_keep_session,
        server_settings={"search_path": service, "application_name": f"helpdesk-{service}"},
    )


def _migration_files(directory: Path) -> list[tuple[str, Path]]:
    files = [(f"common/{p.name}", p) for p in sorted(COMMON_SQL.glob("*.sql"))]
    files += [(p.name, p) for p in sorted(directory.glob("[0-9][0-9][0-9][0-9]_*.sql"))]
    return files


async def migrate(conn: asyncpg.Connection, service: str, directory: Path) -> list[str]:
    """Apply the common SQL, then ``directory``'s ``NNNN_name.sql`` files, each once, in order.

    Runs as the service role; a file already applied whose text changed refuses the start.
    """
    schema = _ident(service)
    await conn.execute("SELECT pg_advisory_lock(hashtext($1))", f"helpdesk.migrate.{service}")
    try:
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {schema}.schema_migrations ("
            " version text PRIMARY KEY, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = dict(await conn.fetch(f"SELECT version, checksum FROM {schema}.schema_migrations"))
        applied = []
        for version, path in _migration_files(directory):
            sql = path.read_text(encoding="utf-8")
            checksum = hashlib.sha256(sql.encode()).hexdigest()
            if version in done:
                if done[version] != checksum:
                    raise RuntimeError(f"migration {version} of {service} changed after it was applied")
                continue
            async with conn.transaction():
                await conn.execute(f"SET LOCAL search_path = {schema}")
                await conn.execute(sql)
                await conn.execute(
                    f"INSERT INTO {schema}.schema_migrations (version, checksum) VALUES ($1, $2)",
                    version, checksum,
                )
            applied.append(version)
            log.info("applied migration", extra={"migration": version, "schema": service})
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", f"helpdesk.migrate.{service}")
