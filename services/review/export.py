"""The review as CSV (one row per figure) and XLSX (openpyxl: figures, breakdowns, trend, actions,
definitions). Numbers are exactly those of the JSON."""

from __future__ import annotations

import csv
import io
from typing import Any

from openpyxl import Workbook

FIGURE_HEADER = ("metric", "value", "previous", "change")


def figure_rows(metrics: dict[str, Any], prefix: str = "") -> list[tuple[str, Any, Any, Any]]:
    """Every ``{value, previous, change}`` leaf as ``(dotted name, value, previous, change)``."""
    rows: list[tuple[str, Any, Any, Any]] = []
    for key, node in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(node, dict) and "value" in node and "change" in node:
            rows.append((name, node["value"], node["previous"], node["change"]))
        elif isinstance(node, dict):
            rows.extend(figure_rows(node, f"{name}."))
    return rows


def to_csv(body: dict[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(("period", *FIGURE_HEADER))
    for row in figure_rows(body["metrics"]) + figure_rows(body.get("breakdowns") or {}, "breakdowns."):
        w.writerow((body["period"], *("" if v is None else v for v in row)))
    return buf.getvalue()


def to_xlsx(body: dict[str, Any]) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.title = "figures"
    ws.append(("period", body["period"], "previous", body["previous_period"], "tz", body["tz"]))
    ws.append(FIGURE_HEADER)
    for row in figure_rows(body["metrics"]):
        ws.append(row)
    bd = wb.create_sheet("breakdowns")
    bd.append(FIGURE_HEADER)
    for row in figure_rows(body.get("breakdowns") or {}, "breakdowns."):
        bd.append(row)
    tr = wb.create_sheet("trend")
    keys = list(body["trend"][0]) if body.get("trend") else []
    tr.append(keys)
    for point in body.get("trend") or []:
        tr.append([point[k] for k in keys])
    ac = wb.create_sheet("actions")
    cols = ("finding", "metric", "measure", "owner", "deadline", "status", "target_value", "following_value",
            "overdue")
    ac.append(cols)
    for a in body.get("actions") or []:
        ac.append([a.get(c) for c in cols])
    df = wb.create_sheet("definitions")
    for key, text in body["definitions"].items():
        df.append((key, text))
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def render(body: dict[str, Any], fmt: str) -> tuple[bytes, str, str]:
    """(content, media type, file extension)."""
    if fmt == "csv":
        return to_csv(body).encode("utf-8"), "text/csv; charset=utf-8", "csv"
    return (to_xlsx(body), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx")
