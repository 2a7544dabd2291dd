"""The Grafana dashboards, written as code: ``python -m scripts.dashboards`` rewrites
``deploy/grafana/dashboards/*.json`` (tests/ops checks the committed JSON is up to date).

Queries follow three rules so that they stay right with any number of replicas:
counters are summed across instances (``sum by``), gauges computed from the database at scrape
(``helpdesk_open_tickets``, backlogs) take ``max`` across replicas, and a ratio whose numerator
may not exist yet (no breach, no satisfied answer) falls back to 0 only for the numerator.
``$__range`` is the dashboard's time range (totals and ratios over it), ``$__rate_interval`` the
rate window Grafana derives from the scrape interval.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "deploy" / "grafana" / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "helpdesk-prometheus"}
R, RI = "$__range", "$__rate_interval"


@dataclass
class Target:
    expr: str
    legend: str = ""


@dataclass
class Panel:
    title: str
    kind: str  # timeseries | bargauge | stat | table
    targets: list[Target]
    description: str = ""
    unit: str = "short"
    width: int = 8
    height: int = 8
    thresholds: list[tuple[float | None, str]] = field(default_factory=list)
    minmax: tuple[float | None, float | None] = (None, None)

    @property
    def instant(self) -> bool:
        return self.kind != "timeseries"


def ratio(num: str, den: str, by: str = "") -> str:
    """``num / den`` where a missing numerator series counts as 0 (e.g. no breach yet)."""
    grouping = f" by ({by})" if by else ""
    return f"(sum{grouping} ({num}) or sum{grouping} ({den}) * 0) / sum{grouping} ({den})"


def zero_fill(expr: str, universe: str) -> str:
    """``expr``, with 0 for every series of ``universe`` it lacks (no dead letter yet on a queue, no
    breach yet for a priority): "none" instead of an empty panel. ``R`` stands for ``$__range``."""
    return f"{expr} or {universe} * 0".replace("[R]", f"[{R}]")


def quantile(q: float, bucket: str, by: str, window: str, fn: str = "increase") -> str:
    return f"histogram_quantile({q}, sum by (le, {by}) ({fn}({bucket}[{window}])))"


def sla_compliance(metric: str) -> str:
    met = f'increase(helpdesk_sla_met_total{{metric="{metric}"}}[{R}])'
    breached = f'increase(helpdesk_sla_breached_total{{metric="{metric}"}}[{R}])'
    return (f"sum by (priority) ({met}) / (sum by (priority) ({met}) + "
            f"(sum by (priority) ({breached}) or sum by (priority) ({met}) * 0))")


GOOD_HIGH = [(None, "red"), (0.9, "orange"), (0.98, "green")]


def service_overview() -> tuple[str, str, list[Panel]]:
    resolved = f"increase(helpdesk_tickets_resolved_total[{R}])"
    answers = f"increase(helpdesk_survey_responses_total[{R}])"
    panels = [
        Panel("Tickets by channel", "bargauge",
              [Target(f"sum by (channel) (increase(helpdesk_tickets_created_total[{R}]))", "{{channel}}")],
              "New tickets in the time range, by the channel they came in on (counted when routed)."),
        Panel("Tickets by category", "bargauge",
              [Target(f"sum by (category) (increase(helpdesk_tickets_created_total[{R}]))", "{{category}}")],
              "New tickets in the time range, by the category routing gave them."),
        Panel("New tickets per minute", "timeseries",
              [Target(f"sum by (channel) (rate(helpdesk_tickets_created_total[{RI}])) * 60", "{{channel}}")],
              "Arrival rate by channel.", unit="short"),
        Panel("First response time p50 / p90 by priority", "bargauge",
              [Target(quantile(0.5, "helpdesk_first_response_seconds_bucket", "priority", R), "p50 {{priority}}"),
               Target(quantile(0.9, "helpdesk_first_response_seconds_bucket", "priority", R), "p90 {{priority}}")],
              "Wall-clock time from the customer's message to the first agent response (tickets answered "
              "in the range).", unit="s"),
        Panel("First-response SLA compliance by priority", "bargauge",
              [Target(sla_compliance("first_response"), "{{priority}}")],
              "Share of first-response clocks met in the range (P1 target: answered within 15 min, 98 %).",
              unit="percentunit", thresholds=GOOD_HIGH, minmax=(0, 1)),
        Panel("Resolution SLA compliance by priority", "bargauge",
              [Target(sla_compliance("resolution"), "{{priority}}")],
              "Share of resolution clocks met in the range.",
              unit="percentunit", thresholds=GOOD_HIGH, minmax=(0, 1)),
        Panel("SLA breaches", "bargauge",
              [Target(zero_fill("sum by (metric, priority) (increase(helpdesk_sla_breached_total[R]))",
                                "sum by (metric, priority) (increase(helpdesk_sla_met_total[R]))"),
                      "{{metric}} {{priority}}")],
              "Clocks breached in the range, by clock and priority.",
              thresholds=[(None, "green"), (1, "red")]),
        Panel("Resolution time p50 / p90 by priority", "bargauge",
              [Target(quantile(0.5, "helpdesk_resolution_seconds_bucket", "priority", R), "p50 {{priority}}"),
               Target(quantile(0.9, "helpdesk_resolution_seconds_bucket", "priority", R), "p90 {{priority}}")],
              "Wall-clock time from the customer's message to resolution.", unit="s"),
        Panel("First-contact resolution", "stat",
              [Target(ratio(resolved.replace("[", '{first_contact="true"}['), resolved), "FCR")],
              "Resolutions in the range that were first-contact (resolved at the first assignee, at most one "
              "response, never escalated or reopened).", unit="percentunit", width=4,
              thresholds=[(None, "orange"), (0.7, "green")], minmax=(0, 1)),
        Panel("CSAT", "stat",
              [Target(ratio(answers.replace("[", '{satisfied="true"}['), answers), "CSAT")],
              "Satisfied survey answers (overall >= 4) among the answers in the range.",
              unit="percentunit", width=4, thresholds=[(None, "red"), (0.8, "orange"), (0.9, "green")],
              minmax=(0, 1)),
        Panel("Survey score (mean) by dimension", "bargauge",
              [Target(f"sum by (dimension) (increase(helpdesk_survey_score_sum[{R}])) / "
                      f"sum by (dimension) (increase(helpdesk_survey_score_count[{R}]))", "{{dimension}}")],
              "Mean 1-5 score of the answers in the range.", minmax=(1, 5),
              thresholds=[(None, "red"), (3, "orange"), (4, "green")]),
        Panel("Resolutions by priority", "bargauge",
              [Target(f"sum by (priority, first_contact) ({resolved})",
                      "{{priority}} first contact={{first_contact}}")],
              "Tickets resolved in the range."),
        Panel("Open backlog by status", "bargauge",
              [Target("sum by (status) (max by (status, priority) (helpdesk_open_tickets))", "{{status}}")],
              "Tickets not closed, now (exact: counted in the database at scrape; max across intake replicas)."),
        Panel("Open backlog by priority", "timeseries",
              [Target("sum by (priority) (max by (status, priority) (helpdesk_open_tickets))", "{{priority}}")],
              "Open tickets over time by priority ('none': not routed yet)."),
        Panel("Waiting for an owner", "bargauge",
              [Target("sum by (department, state) (max by (department, state) "
                      "(helpdesk_routing_unassigned_backlog))", "{{department}} {{state}}")],
              "Tickets routing could not assign yet: queued for a department, or unassigned."),
        Panel("Notifications by channel and outcome", "bargauge",
              [Target(f"sum by (channel, outcome) (increase(helpdesk_notifications_total[{R}]))",
                      "{{channel}} {{outcome}}")],
              "Customer and staff notifications in the range (failed = gave up after retries)."),
    ]
    return "helpdesk-service-overview", "Helpdesk / Service overview", panels


def pipeline_health() -> tuple[str, str, list[Panel]]:
    panels = [
        Panel("Services up", "stat", [Target('up{job="helpdesk"}', "{{service}}")],
              "1 when Prometheus scrapes the instance.", width=24, height=4,
              thresholds=[(None, "red"), (1, "green")]),
        Panel("Messages consumed per queue", "timeseries",
              [Target(f"sum by (queue) (rate(helpdesk_messages_consumed_total[{RI}]))", "{{queue}}")],
              "Messages per second settled by each queue's consumers (counted per batch).", unit="ops"),
        Panel("Messages published per destination", "timeseries",
              [Target(f"sum by (type) (rate(helpdesk_outbox_published_total[{RI}]))", "{{type}}")],
              "Events per second the outbox relays published to helpdesk.events, per routing key (the relays' "
              "own counter, counted when the publisher confirm arrived).", unit="ops"),
        Panel("Consumer outcomes per queue", "timeseries",
              [Target(f"sum by (queue, outcome) (rate(helpdesk_messages_consumed_total[{RI}]))",
                      "{{queue}} {{outcome}}")],
              "ok = acked after commit, retried = nacked and redelivered, dead_lettered = refused.", unit="ops"),
        Panel("Consumer latency p50 / p99 per queue", "timeseries",
              [Target(quantile(0.5, "helpdesk_consumer_seconds_bucket", "queue", RI, "rate"), "p50 {{queue}}"),
               Target(quantile(0.99, "helpdesk_consumer_seconds_bucket", "queue", RI, "rate"), "p99 {{queue}}")],
              "Arrival to settlement of a delivery (its batch's commit and ack).", unit="s"),
        Panel("Messages in process", "timeseries",
              [Target("sum by (queue) (helpdesk_consumer_in_process)", "{{queue}}")],
              "Messages being handled right now, per queue (bounded by the prefetch per replica)."),
        Panel("Dead letters per queue", "bargauge",
              [Target(zero_fill('sum by (queue) (increase(helpdesk_messages_consumed_total{outcome="dead_lettered"}[R]))',
                                'sum by (queue) (increase(helpdesk_messages_consumed_total[R]))'), "{{queue}}")],
              "Messages refused by a consumer in the range (reason in x-helpdesk-reason; in "
              "helpdesk.dead-letters). Broker-side dead letters after the delivery limit: alert "
              "HelpdeskDeadLetterQueueGrowing.", thresholds=[(None, "green"), (1, "red")]),
        Panel("Redeliveries per queue", "bargauge",
              [Target(zero_fill('sum by (queue) (increase(helpdesk_messages_consumed_total{outcome="retried"}[R]))',
                                'sum by (queue) (increase(helpdesk_messages_consumed_total[R]))'), "{{queue}}")],
              "Messages nacked for redelivery in the range (infrastructure errors, retried up to the "
              "queue's delivery limit).", thresholds=[(None, "green"), (1, "orange")]),
        Panel("Outbox lag p50 / p99 per service", "timeseries",
              [Target(quantile(0.5, "helpdesk_outbox_lag_seconds_bucket", "service", RI, "rate"), "p50 {{service}}"),
               Target(quantile(0.99, "helpdesk_outbox_lag_seconds_bucket", "service", RI, "rate"),
                      "p99 {{service}}")],
              "Commit of a state change to the broker's confirm of its event.", unit="s"),
        Panel("Outbox events published per service", "timeseries",
              [Target(f"sum by (service) (rate(helpdesk_outbox_published_total[{RI}]))", "{{service}}")],
              "Events per second the relays published.", unit="ops"),
        Panel("Outbox pending", "timeseries",
              [Target("max by (service) (helpdesk_outbox_pending)", "{{service}}")],
              "Unsent outbox rows at each relay's last pass (worst replica)."),
        Panel("Garbage-collector pauses per service", "timeseries",
              [Target(f"max by (service) (rate(helpdesk_gc_pause_seconds_sum[{RI}]))", "{{service}}")],
              "Share of the time a service's event loop stood still for Python's garbage collector"
              " (worst replica; shared.gcpolicy): a consumer latency that rises with it is the process,"
              " not the database. 0 when nothing was collected.", unit="percentunit"),
    ]
    return "helpdesk-pipeline-health", "Helpdesk / Pipeline health", panels


def _panel_json(panel: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    steps = [{"color": c, "value": v} for v, c in (panel.thresholds or [(None, "green")])]
    defaults: dict[str, Any] = {"unit": panel.unit, "thresholds": {"mode": "absolute", "steps": steps},
                                "color": {"mode": "thresholds" if panel.thresholds else "palette-classic"}}
    if panel.minmax[0] is not None:
        defaults["min"] = panel.minmax[0]
    if panel.minmax[1] is not None:
        defaults["max"] = panel.minmax[1]
    options: dict[str, Any] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
    if panel.kind == "bargauge":
        options.update({"orientation": "horizontal", "displayMode": "gradient", "showUnfilled": True})
    elif panel.kind == "timeseries":
        options = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                   "tooltip": {"mode": "multi", "sort": "desc"}}
    return {
        "id": pid, "type": panel.kind, "title": panel.title, "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options,
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": t.expr, "legendFormat": t.legend,
             "instant": panel.instant, "range": not panel.instant}
            for i, t in enumerate(panel.targets)
        ],
    }


def dashboard(uid: str, title: str, panels: list[Panel]) -> dict[str, Any]:
    out, x, y, row_h = [], 0, 0, 0
    for pid, panel in enumerate(panels, start=1):
        if x + panel.width > 24:
            x, y, row_h = 0, y + row_h, 0
        out.append(_panel_json(panel, pid, x, y))
        x, row_h = x + panel.width, max(row_h, panel.height)
    return {
        "uid": uid, "title": title, "tags": ["helpdesk"], "timezone": "browser", "editable": True,
        "schemaVersion": 39, "version": 1, "refresh": "30s", "graphTooltip": 1,
        "time": {"from": "now-24h", "to": "now"}, "templating": {"list": []}, "annotations": {"list": []},
        "panels": out,
    }


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    files = {}
    for build in (service_overview, pipeline_health):
        uid, title, panels = build()
        files[f"{uid.removeprefix('helpdesk-')}.json"] = json.dumps(
            dashboard(uid, title, panels), indent=2, ensure_ascii=False) + "\n"
    return files


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT.relative_to(ROOT) / name}")


if __name__ == "__main__":
    main()
