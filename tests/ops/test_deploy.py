"""docker-compose.yml and deploy/k8s: valid, complete (the five services, broker, database, Prometheus,
Grafana) and consistent with the contract ports and the image the Dockerfile builds.

``docker-compose config`` validates the compose file without a Docker engine; ``yq`` (Debian's,
jq-based) turns YAML into JSON for the structural checks.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
PORTS = {"intake": 8001, "routing": 8002, "sla": 8003, "notification": 8004, "survey": 8005, "review": 8006}


def run(*args: str, stdin: str | None = None) -> str:
    exe = shutil.which(args[0])
    assert exe, f"{args[0]} is not installed (apt-get install {args[0]})"
    out = subprocess.run([exe, *args[1:]], cwd=ROOT, capture_output=True, text=True, timeout=60, input=stdin)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def yaml_docs(text: str) -> list[Any]:
    return [d for d in json.loads(run("yq", "-c", "-s", ".", stdin=text)) if d]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    run("docker-compose", "config", "-q")
    return yaml_docs(run("docker-compose", "config"))[0]


def test_compose_runs_the_whole_system(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"rabbitmq", "postgres", "prometheus", "grafana", *PORTS} <= set(services)
    for name, port in PORTS.items():
        svc = services[name]
        assert svc["command"] == ["python", "-m", f"services.{name}"]
        assert svc["image"] == "helpdesk:dev" and svc["build"]["context"] == str(ROOT)
        assert any(str(p.get("target")) == str(port) for p in svc["ports"]), svc["ports"]
        assert f":{port}/healthz" in " ".join(svc["healthcheck"]["test"])
        assert svc["environment"]["HELPDESK_HOST"] == "0.0.0.0"
        assert svc["depends_on"]["rabbitmq"]["condition"] == "service_healthy"


def test_compose_broker_has_management_and_prometheus_plugins(compose: dict[str, Any]) -> None:
    rabbit = compose["services"]["rabbitmq"]
    plugins = (ROOT / "deploy" / "rabbitmq" / "enabled_plugins").read_text()
    assert "rabbitmq_management" in plugins and "rabbitmq_prometheus" in plugins
    assert "management" in rabbit["image"]
    assert {str(p["target"]) for p in rabbit["ports"]} >= {"5672", "15672", "15692"}


def test_compose_mounts_exist(compose: dict[str, Any]) -> None:
    for svc in compose["services"].values():
        for volume in svc.get("volumes", []):  # docker-compose 1.x prints short syntax: src:dst:mode
            source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
            if source.startswith("/"):
                assert Path(source).exists(), source


def test_dockerfile_builds_the_services_image() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "COPY shared ./shared" in text and "COPY services ./services" in text
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "shared" not in ignored and "services" not in ignored and "pyproject.toml" not in ignored


@pytest.fixture(scope="module")
def manifests() -> list[dict[str, Any]]:
    kustomization = yaml_docs((K8S / "kustomization.yaml").read_text())[0]
    docs = []
    for resource in kustomization["resources"]:
        docs += yaml_docs((K8S / resource).read_text())
    return docs


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml_docs((K8S / "kustomization.yaml").read_text())[0]
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == on_disk


def test_k8s_deployments_have_replicas_probes_and_scrape_annotations(manifests: list[dict[str, Any]]) -> None:
    deployments = {d["metadata"]["name"]: d for d in manifests if d["kind"] == "Deployment"}
    assert set(deployments) == {f"helpdesk-{n}" for n in PORTS}
    for name, port in PORTS.items():
        spec = deployments[f"helpdesk-{name}"]["spec"]
        assert spec["replicas"] >= 2
        pod = spec["template"]
        assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)
        container = pod["spec"]["containers"][0]
        assert container["command"] == ["python", "-m", f"services.{name}"]
        assert container["ports"][0]["containerPort"] == port
        for probe in ("startupProbe", "readinessProbe"):
            assert container[probe]["httpGet"]["path"] == "/healthz"
        assert "livenessProbe" in container
        refs = {next(iter(r.values()))["name"] for r in container["envFrom"]}
        assert refs == {"helpdesk-config", f"helpdesk-{name}"}  # one secret each (its own user and role)


def test_k8s_services_and_monitoring_agree_on_labels(manifests: list[dict[str, Any]]) -> None:
    services = [d for d in manifests if d["kind"] == "Service"]
    assert {s["metadata"]["labels"]["service"] for s in services} == set(PORTS)
    assert all(s["metadata"]["labels"]["helpdesk-job"] == "helpdesk" for s in services)
    monitor = yaml_docs((K8S / "monitoring" / "servicemonitor.yaml").read_text())[0]
    assert monitor["spec"]["jobLabel"] == "helpdesk-job" and monitor["spec"]["targetLabels"] == ["service"]
    scrape = yaml_docs((K8S / "monitoring" / "prometheus-scrape.yml").read_text())[0]
    assert [j["job_name"] for j in scrape["scrape_configs"]] == ["helpdesk", "rabbitmq"]
    kinds = {d["kind"] for d in manifests}
    assert {"Namespace", "ConfigMap", "Secret", "PodDisruptionBudget"} <= kinds
