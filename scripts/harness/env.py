"""Throw-away environments for benchmarks: a fresh vhost and database, services as real processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from tests import support

ROOT = Path(__file__).resolve().parents[2]


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


@contextlib.asynccontextmanager
async def environment(prefix: str = "bench", *, db_socket: str | None = None) -> AsyncIterator[dict[str, str]]:
    """A vhost and a database of their own (dropped after); ``db_socket``: reach Postgres through its unix
    socket in that directory instead of 127.0.0.1:5432."""
    name = f"helpdesk_{prefix}_{uuid.uuid4().hex[:8]}"
    support.create_vhost(name)
    env = {
        "AMQP_URL": f"amqp://guest:guest@127.0.0.1:5672/{name}",
        "DATABASE_URL": (f"postgresql://postgres@/{name}?host={db_socket}" if db_socket
                         else f"postgresql://postgres@127.0.0.1:5432/{name}"),
        "HELPDESK_API_KEYS": "bench:bench-secret:admin",
        "HELPDESK_CONTACT_READS_PER_MINUTE": "100000000",
        "HELPDESK_LOG_LEVEL": "WARNING",
    }
    try:
        yield env
    finally:
        support.delete_vhost(name)
        await support.drop_database(name)


@contextlib.asynccontextmanager
async def service(name: str, env: dict[str, str], port: int) -> AsyncIterator[subprocess.Popen[bytes]]:
    """Run ``python -m services.<name>`` on ``port`` until it is healthy; stop it afterwards."""
    import socket

    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise RuntimeError(f"port {port} is already in use: stop what runs there first")
    proc = subprocess.Popen(
        [sys.executable, "-m", f"services.{name}"], cwd=ROOT,
        env={**os.environ, **env, f"{name.upper()}_PORT": str(port)},
        stdout=subprocess.DEVNULL, stderr=None if os.environ.get("BENCH_VERBOSE") else subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient() as client:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not become healthy")
                await asyncio.sleep(0.2)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]
