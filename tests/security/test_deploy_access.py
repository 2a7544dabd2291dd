"""Deployment files: the broker definitions are the generator's, compose and k8s give each service only
its own broker user and database role, bootstrap is a step of its own, only the customer pages are public."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from shared.broker_users import VHOST, definitions, demo_password, users
from tests.ops.test_deploy import K8S, PORTS, ROOT, manifests, run, yaml_docs  # noqa: F401  (fixture)

DEFS = json.loads((ROOT / "deploy" / "rabbitmq" / "definitions.json").read_text())


def _matches(password: str, password_hash: str) -> bool:
    raw = base64.b64decode(password_hash)
    return hashlib.sha256(raw[:4] + password.encode()).digest() == raw[4:]


def test_definitions_file_is_the_generators_output() -> None:
    fresh = definitions({})
    def strip(d: dict[str, Any]) -> dict[str, Any]:
        return {**d, "users": [{k: v for k, v in u.items() if k != "password_hash"} for u in d["users"]]}

    assert strip(DEFS) == strip(fresh), "run: python -m shared.broker_users > deploy/rabbitmq/definitions.json"
    for u in DEFS["users"]:
        assert _matches(demo_password(u["name"]), u["password_hash"]), u["name"]
    names = {u.name for u in users()}
    assert {f"helpdesk-{s}" for s in PORTS} <= names and {"gw-wechat", "gw-web", "sub-erp"} <= names
    gw = next(p for p in DEFS["topic_permissions"] if p["user"] == "gw-wechat")
    assert (gw["exchange"], gw["write"], gw["read"]) == ("helpdesk.intake", r"^intake\.wechat$", "^$")
    assert all(p["vhost"] == VHOST for p in DEFS["permissions"])


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml_docs(run("docker-compose", "config"))[0]


def test_compose_bootstraps_once_and_gives_each_service_its_own_secrets(compose: dict[str, Any]) -> None:
    svcs = compose["services"]
    boot = svcs["bootstrap"]
    assert boot["command"] == ["python", "-m", "shared.bootstrap"] and "DATABASE_URL" in boot["environment"]
    for name in PORTS:
        env = svcs[name]["environment"]
        assert "DATABASE_URL" not in env, name
        assert unquote(urlsplit(env["AMQP_URL"]).username) == f"helpdesk-{name}"
        assert urlsplit(env["AMQP_URL"]).path == f"/{VHOST}"
        assert urlsplit(env["HELPDESK_DB_URL"]).username == f"helpdesk_{name}"
        assert svcs[name]["depends_on"]["bootstrap"]["condition"] == "service_completed_successfully"
    volumes = " ".join(str(v) for v in svcs["rabbitmq"]["volumes"])
    assert "definitions.json" in volumes and "definitions.conf" in volumes
    assert "load_definitions" in (ROOT / "deploy" / "rabbitmq" / "definitions.conf").read_text()


def test_k8s_secrets_jobs_policies_and_the_public_ingress(manifests: list[dict[str, Any]]) -> None:  # noqa: F811
    secrets = {d["metadata"]["name"]: d["stringData"] for d in manifests if d["kind"] == "Secret"}
    assert "DATABASE_URL" in secrets["helpdesk-bootstrap"]
    for name in PORTS:
        own = secrets[f"helpdesk-{name}"]
        assert "DATABASE_URL" not in own and "HELPDESK_CUSTOMER_KEY_SECRET" in own
        amqp, pg = urlsplit(own["AMQP_URL"]), urlsplit(own["HELPDESK_DB_URL"])
        assert amqp.scheme == "amqps" and unquote(amqp.username) == f"helpdesk-{name}" and "cafile=" in amqp.query
        assert pg.username == f"helpdesk_{name}" and "sslmode=verify-full" in pg.query
    jobs = {d["metadata"]["name"]: d for d in manifests if d["kind"] == "Job"}
    boot = jobs["helpdesk-bootstrap"]["spec"]["template"]["spec"]["containers"][0]
    assert boot["command"] == ["python", "-m", "shared.bootstrap"]
    assert "helpdesk-rabbitmq-definitions" in jobs
    policies = {d["metadata"]["name"] for d in manifests if d["kind"] == "NetworkPolicy"}
    assert {"helpdesk-default-deny-ingress", "helpdesk-intake-from-notification"} <= policies
    ingresses = [d for d in manifests if d["kind"] == "Ingress"]
    paths = {(p["path"], p["backend"]["service"]["name"]) for i in ingresses for r in i["spec"]["rules"]
             for p in r["http"]["paths"]}
    assert paths == {("/s/", "helpdesk-survey"), ("/t/", "helpdesk-intake")}  # the customers' pages only
    config = next(d for d in manifests if d["kind"] == "ConfigMap")["data"]
    assert config["HELPDESK_ENV"] == "production" and config["HELPDESK_DOCS"] == "false"
