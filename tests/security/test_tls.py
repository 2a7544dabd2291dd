"""TLS to the broker and to Postgres works and verifies the server: a TLS front (this test's own, with a
certificate made for it) before the real RabbitMQ and Postgres. With the CA given the service's
connections work; without it they are refused (never a silent plaintext fallback)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import aio_pika
import asyncpg
import pytest

from shared import db
from shared.settings import Settings

SSL_REQUEST = struct.pack("!ii", 8, 80877103)


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tls")
    crt, key = d / "ca.crt", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(crt)],
                   check=True, capture_output=True, timeout=60)
    return crt, key


def _server_ctx(cert: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*cert)
    return ctx


async def _pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    w.close()


@contextlib.asynccontextmanager
async def tls_front(target_port: int, ctx: ssl.SSLContext, *, postgres: bool) -> AsyncIterator[int]:
    """A TLS listener forwarding the decrypted stream to ``target_port`` (Postgres: after its SSLRequest)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if postgres:
                if await reader.readexactly(8) != SSL_REQUEST:
                    writer.close()
                    return
                writer.write(b"S")
                await writer.drain()
                await writer.start_tls(ctx)
            up_r, up_w = await asyncio.open_connection("127.0.0.1", target_port)
        except Exception:  # noqa: BLE001 - a refused handshake is what some tests expect
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_w), _pipe(up_r, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=None if postgres else ctx)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def test_amqps_verifies_the_broker(run_env: dict[str, str], cert) -> None:  # noqa: ANN001
    vhost = urlsplit(run_env["AMQP_URL"]).path
    async with tls_front(5672, _server_ctx(cert), postgres=False) as port:
        url = f"amqps://guest:guest@localhost:{port}{vhost}"
        conn = await aio_pika.connect(f"{url}?cafile={cert[0]}")
        async with conn:
            ch = await conn.channel()
            assert await ch.declare_queue(exclusive=True)
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            await aio_pika.connect(url, timeout=5)  # the system CAs do not know this certificate


async def test_postgres_verify_full_through_a_service_pool(run_env: dict[str, str], cert) -> None:  # noqa: ANN001
    admin = Settings()
    await db.bootstrap(admin, "intake")
    name = db.database_name(admin.database_url)
    async with tls_front(5432, _server_ctx(cert), postgres=True) as port:
        base = f"postgresql://helpdesk_intake@localhost:{port}/{name}?sslmode=verify-full"
        settings = Settings(HELPDESK_DB_URL=f"{base}&sslrootcert={cert[0]}")
        dsn = db.role_dsn(settings, "intake")
        assert "sslmode=verify-full" in dsn and f"sslrootcert={cert[0]}" in dsn
        pool = await db.create_pool(settings, "intake", max_size=1)
        try:
            assert await pool.fetchval("SELECT current_user") == "helpdesk_intake"
        finally:
            await pool.close()
        wrong = Settings(HELPDESK_DB_URL=base + "&sslrootcert=" + str(Path(ssl.get_default_verify_paths().cafile or
                                                                                 "/etc/ssl/certs/ca-certificates.crt")))
        with pytest.raises((ssl.SSLError, OSError, asyncpg.PostgresError)):
            await asyncpg.connect(db.role_dsn(wrong, "intake"), timeout=5)
