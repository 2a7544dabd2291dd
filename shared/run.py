"""``make run``: start every service in its own process, logs to the terminal, Ctrl-C stops all.

Each service bootstraps what it needs on start (database if missing, its role, schema and
migrations, the broker topology), so this supervisor only spawns, restarts and stops processes.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORDER = ("intake", "routing", "sla", "notification", "survey", "review")


def available() -> list[str]:
    return [s for s in ORDER if (ROOT / "services" / s / "__main__.py").exists()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("services", nargs="*", help="services to run (default: every service that exists)")
    parser.add_argument("--max-restarts", type=int, default=5)
    args = parser.parse_args()
    names = args.services or available()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("HELPDESK_API_KEYS", "dev:dev-secret:admin")
    procs: dict[str, subprocess.Popen[bytes]] = {}
    restarts = dict.fromkeys(names, 0)
    stopping = False

    def spawn(name: str) -> None:
        procs[name] = subprocess.Popen([sys.executable, "-m", f"services.{name}"], cwd=ROOT, env=env)
        print(f"[run] started {name} (pid {procs[name].pid})", file=sys.stderr, flush=True)

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for name in names:
        spawn(name)
    while not stopping:
        time.sleep(0.5)
        for name, proc in list(procs.items()):
            code = proc.poll()
            if code is None or stopping:
                continue
            if restarts[name] >= args.max_restarts:
                print(f"[run] {name} exited ({code}); gave up after {restarts[name]} restarts", file=sys.stderr)
                del procs[name]
                continue
            restarts[name] += 1
            print(f"[run] {name} exited ({code}); restarting", file=sys.stderr, flush=True)
            time.sleep(1)
            spawn(name)
        if not procs:
            return 1
    print("[run] stopping services", file=sys.stderr, flush=True)
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 20
    for proc in procs.values():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
