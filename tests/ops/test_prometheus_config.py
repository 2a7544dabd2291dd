"""The Prometheus side of deploy/: configs and rules pass ``promtool``; the alert rules' unit tests
(deploy/prometheus/tests) pass ``promtool test rules``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"


def promtool(*args: str, cwd: Path = PROM) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    assert exe, "promtool is not installed: apt-get install prometheus"
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_alert_rules_are_valid() -> None:
    out = promtool("check", "rules", *(str(p) for p in sorted((PROM / "rules").glob("*.yml"))))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_alert_rules_unit_tests_pass() -> None:
    tests = sorted((PROM / "tests").glob("*.yml"))
    assert tests
    out = promtool("test", "rules", *(str(p) for p in tests))
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus-local.yml"])
def test_scrape_configs_are_valid(config: str) -> None:
    out = promtool("check", "config", config)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus-local.yml"])
def test_scrape_configs_cover_every_service_and_rabbitmq(config: str) -> None:
    text = (PROM / config).read_text()
    for service, port in (("intake", 8001), ("routing", 8002), ("sla", 8003), ("notification", 8004),
                          ("survey", 8005), ("review", 8006)):
        assert f":{port}\"]" in text and f"service: {service}" in text, service
    assert ":15692" in text  # rabbitmq_prometheus
