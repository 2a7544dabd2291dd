"""What every dashboard panel shows now, without Grafana: evaluates each panel query of
deploy/grafana/dashboards/*.json on a Prometheus and prints one line per query.

    python -m scripts.panel_values [--prometheus http://127.0.0.1:9090] [--range 1h] [--rate-interval 1m]

``$__range`` becomes ``--range`` and ``$__rate_interval`` ``--rate-interval`` (as Grafana would fill
them in). Exit status 1 when a query fails or returns nothing (a panel that would be empty).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"


def dashboards() -> dict[str, dict[str, Any]]:
    """File name -> dashboard JSON."""
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def fill(expr: str, *, range_: str, rate_interval: str) -> str:
    return expr.replace("$__rate_interval", rate_interval).replace("$__range", range_)


def query(client: httpx.Client, prometheus: str, expr: str) -> list[dict[str, Any]]:
    body = client.get(f"{prometheus}/api/v1/query", params={"query": expr}).json()
    if body.get("status") != "success":
        raise ValueError(f"{body.get('errorType')}: {body.get('error')}")
    return body["data"]["result"]


def finite(result: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(s["value"][1])) for s in result)


def positive(result: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(v := float(s["value"][1])) and v > 0 for s in result)


def summarise(result: list[dict[str, Any]], limit: int = 8) -> str:
    """``P1=0.5, P3=30``: a query result as a short line (label values, then the value)."""
    if not result:
        return "(no data)"
    parts = []
    for sample in result[:limit]:
        labels = ",".join(v for k, v in sorted(sample["metric"].items()) if k != "__name__") or "value"
        parts.append(f"{labels}={float(sample['value'][1]):.4g}")
    more = f" (+{len(result) - limit} more)" if len(result) > limit else ""
    return ", ".join(parts) + more


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090")
    parser.add_argument("--range", default="1h", dest="range_")
    parser.add_argument("--rate-interval", default="1m")
    args = parser.parse_args()
    empty = 0
    with httpx.Client(timeout=10) as client:
        for name, board in dashboards().items():
            print(f"# {board['title']} ({name})")
            for panel in board["panels"]:
                for target in panel["targets"]:
                    expr = fill(target["expr"], range_=args.range_, rate_interval=args.rate_interval)
                    try:
                        line = summarise(result := query(client, args.prometheus, expr))
                        empty += not finite(result)
                    except (ValueError, httpx.HTTPError) as exc:
                        line, empty = f"ERROR {exc}", empty + 1
                    print(f"{panel['title']} [{target['refId']}]: {line}")
    return 1 if empty else 0


if __name__ == "__main__":
    sys.exit(main())
