"""The Grafana dashboards: generated from scripts/dashboards.py (the JSON is up to date), every panel
has a query on the provisioned datasource, and the issue's panels are all there."""

from __future__ import annotations

import json
from pathlib import Path

from scripts import dashboards

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"


def test_committed_json_is_generated() -> None:
    for name, text in dashboards.render().items():
        path = GRAFANA / "dashboards" / name
        assert path.exists() and path.read_text() == text, f"run `python -m scripts.dashboards` ({name} is stale)"


def test_panels_use_the_provisioned_datasource() -> None:
    provisioned = (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    assert "uid: helpdesk-prometheus" in provisioned
    for path in (GRAFANA / "dashboards").glob("*.json"):
        board = json.loads(path.read_text())
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), path.name
        for panel in board["panels"]:
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                assert target["expr"].strip() and target["datasource"]["uid"] == "helpdesk-prometheus"


def test_the_manager_and_operator_questions_have_panels() -> None:
    titles = {p["title"] for path in (GRAFANA / "dashboards").glob("*.json")
              for p in json.loads(path.read_text())["panels"]}
    for wanted in ("Tickets by channel", "Tickets by category", "First response time p50 / p90 by priority",
                   "First-response SLA compliance by priority", "First-contact resolution", "CSAT",
                   "Open backlog by status", "SLA breaches", "Consumer outcomes per queue", "Dead letters per queue",
                   "Redeliveries per queue", "Outbox lag p50 / p99 per service"):
        assert wanted in titles


def test_dashboards_are_provisioned_from_their_folder() -> None:
    provider = (GRAFANA / "provisioning" / "dashboards" / "helpdesk.yml").read_text()
    assert "path: /var/lib/grafana/dashboards/helpdesk" in provider
