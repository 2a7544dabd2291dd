"""Every panel query of every Grafana dashboard returns data from a real Prometheus scraping the
running services after a burst of tickets (tests/ops/stack.py sets that up once for the module).

A panel may come back empty only when it reads a service that does not exist in ``services/`` yet
(no ``services/<name>/__main__.py``): the test turns strict by itself once that service is merged.
Set ``OPS_PANEL_REPORT=<file>`` to write each panel's values there as well (they are printed too).
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from scripts import panel_values
from tests.ops import stack

pytestmark = pytest.mark.integration  # a stack of real processes: not a unit test

PANELS = [
    pytest.param(name, panel, id=f"{name.removesuffix('.json')}: {panel['title']}")
    for name, board in panel_values.dashboards().items() for panel in board["panels"]
]
VALUES: dict[str, list[str]] = {}
# Gauges that are rightly 0 once the burst is handled; every other panel must show something above 0
# after the scenario (which provokes a dead letter and redeliveries on purpose).
MAY_BE_ZERO = {"Messages in process", "Outbox pending", "Waiting for an owner",
               "Garbage-collector pauses per service"}  # a quiet process may not collect at all


@pytest.fixture(scope="module")
async def scraped() -> AsyncIterator[tuple[stack.Prometheus, list[str]]]:
    async with stack.scraped_stack() as running:
        yield running
    lines = [f"{key}\n    " + "\n    ".join(vals) for key, vals in VALUES.items()]
    report = "\n".join(lines)
    print("\n--- dashboard panel values ---\n" + report)
    if path := os.environ.get("OPS_PANEL_REPORT"):
        with open(path, "w") as f:
            f.write(report + "\n")


def window(prom: stack.Prometheus) -> str:
    """The dashboard range and rate window for this run: everything since Prometheus started."""
    return f"{int(time.time() - prom.started) + 5}s"


@pytest.mark.parametrize(("board", "panel"), PANELS)
async def test_panel_returns_data(scraped: tuple[stack.Prometheus, list[str]], board: str, panel: dict) -> None:
    prom, present = scraped
    assert panel["targets"], "a panel without queries"
    key = f"{board.removesuffix('.json')} / {panel['title']}"
    missing_services = set()
    async with httpx.AsyncClient(timeout=10) as client:
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "helpdesk-prometheus"
            expr = panel_values.fill(target["expr"], range_=window(prom), rate_interval=window(prom))
            result = await prom.query(client, expr)
            absent = stack.owners(expr) - set(present)
            if absent and not panel_values.finite(result):
                missing_services |= absent
                VALUES.setdefault(key, []).append(f"{target['refId']}: expected empty ({', '.join(sorted(absent))} "
                                                  "not in services/ yet)")
                continue
            VALUES.setdefault(key, []).append(f"{target['refId']}: {panel_values.summarise(result)}")
            assert result, f"no data for {target['expr']}"
            assert panel_values.finite(result), f"only NaN/Inf for {target['expr']}: {result}"
            if panel["title"] not in MAY_BE_ZERO:
                assert panel_values.positive(result), f"only zeros for {target['expr']}: {result}"
    if missing_services:
        pytest.xfail(f"reads {', '.join(sorted(missing_services))}, not in services/ yet")


async def test_alert_rules_load_and_evaluate_on_live_metrics(scraped: tuple[stack.Prometheus, list[str]]) -> None:
    """The same Prometheus loaded deploy/prometheus/rules and evaluates every rule without error; the
    healthy run fires no critical alert (service down, P1 compliance is judged over an hour)."""
    prom, _ = scraped
    async with httpx.AsyncClient(timeout=10) as client:
        groups = (await client.get(f"{prom.url}/api/v1/rules")).json()["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        assert [g["name"] for g in groups] == ["helpdesk"]
        assert len(rules) >= 10
        bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
        assert not bad, bad
        firing = [a["labels"]["alertname"] for a in (await client.get(f"{prom.url}/api/v1/alerts")).json()["data"]["alerts"]
                  if a["state"] == "firing"]
        assert "HelpdeskServiceDown" not in firing


async def test_every_service_process_froze_what_its_start_made(scraped: tuple[stack.Prometheus, list[str]]) -> None:
    """``python -m services.<name>`` settles the garbage collector once the service has started
    (``shared.gcpolicy``): each process froze the objects of its start, and counts its pauses."""
    prom, present = scraped
    async with httpx.AsyncClient(timeout=10) as client:
        frozen = {r["metric"]["service"]: float(r["value"][1])
                  for r in await prom.query(client, "helpdesk_gc_frozen_objects")}
        paused = {r["metric"]["service"]: float(r["value"][1])
                  for r in await prom.query(client, 'helpdesk_gc_pause_seconds_count{generation="2"}')}
    assert set(frozen) == set(present), frozen
    assert all(n > 10_000 for n in frozen.values()), frozen  # modules, schemas, calendars: ~100,000
    assert all(paused.get(s, 0) >= 1 for s in present), paused  # at least the settling collection
