"""The review as a page: ``GET /reviews/{period}?lang=zh-CN|en`` — the seeds' table with ↑/↓, charts
(Chart.js, served by this service from /static), every figure linking to the tickets behind it.
Same key as the API (``X-API-Key`` header, or ``?key=`` for a browser link)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.review import export, names, periods, reports
from shared.auth import Forbidden, Principal, authenticate
from shared.openapi import errors

router = APIRouter(tags=["review"])
ENV = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape())
LABELS = {
    "zh-CN": {"title": "服务复盘", "metric": "指标", "value": "本期", "previous": "上期", "change": "环比",
              "trend": "近12个月趋势", "categories": "问题分类分布", "compliance": "各优先级首响达标率",
              "actions": "改进措施", "overdue": "已逾期", "definitions": "指标口径", "top": "主要问题分类",
              "target": "目标", "following": "下期值"},
    "en": {"title": "Service review", "metric": "Figure", "value": "This period", "previous": "Previous",
           "change": "Change", "trend": "12-month trend", "categories": "Categories",
           "compliance": "First-response compliance per priority", "actions": "Improvement actions",
           "overdue": "overdue", "definitions": "Definitions", "top": "Top problem categories", "target": "target",
           "following": "following period"},
}


async def _who(request: Request, key: Annotated[str | None, Query(max_length=200)] = None) -> Principal:
    presented = request.headers.get("x-api-key") or key
    who = authenticate(request.app.state.runtime.settings.api_principals, presented)
    if not who.has_any(("analyst", "supervisor")):
        raise Forbidden("X-API-Key", "needs role analyst or supervisor")
    return who


def arrow(change: float | None) -> str:
    return "" if change is None or change == 0 else ("↑" if change > 0 else "↓")


@router.get("/reviews/{period}", response_class=HTMLResponse, summary="The review as a page (zh-CN, en)",
            responses=errors(401, 403, 422))
async def review_page(request: Request, period: str, who: Annotated[Principal, Depends(_who)],
                      lang: Annotated[str, Query(pattern="^(zh-CN|en)$")] = "zh-CN",
                      key: Annotated[str | None, Query(max_length=200)] = None) -> HTMLResponse:
    rt = request.app.state.runtime
    now = datetime.now(UTC)
    p = periods.parse_past(period, now=now, tz=rt.settings.tz)
    body = await reports.review(rt.pool, p, tz=rt.settings.tz, now=now)
    acts: dict[str, list[dict[str, Any]]] = {}
    for a in body.get("actions") or []:
        acts.setdefault(a["metric"], []).append(a)
    rows = [{"metric": m, "label": names.name(m, lang), "value": v, "previous": pv, "change": ch, "arrow": arrow(ch), "actions": acts.get(m, []),
             "href": f"/v1/reviews/{p.name}/tickets?metric={m}"} for m, v, pv, ch in export.figure_rows(body["metrics"])]
    charts = {"trend": body["trend"],
              "categories": {k: v["value"] for k, v in body["metrics"]["categories"].items()},
              "compliance": {k: v["value"] for k, v in body["metrics"]["first_response_compliance"].items()}}
    html = ENV.get_template("report.html").render(
        body=body, rows=rows, t=LABELS[lang], lang=lang, charts=orjson.dumps(charts).decode().replace("</", "<\\/"),
        definitions=body["definitions"])
    return HTMLResponse(html, headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})


