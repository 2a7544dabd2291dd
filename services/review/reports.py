"""Review's use cases for reports: the figures of a period (live, or its frozen snapshot)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from services.review import figures, periods, store
from services.review.definitions import DEFINITIONS
from services.review.periods import Period
from shared.errors import DomainError


async def _stats(conn: asyncpg.Connection | list[asyncpg.Connection], period: Period, tz: ZoneInfo, now: datetime
                 ) -> dict[str, Any]:
    end = period.end(tz)
    return await store.period_stats(conn, start=period.start(tz), end=end, backlog_at=min(end, now))


def _trend_sums(s: dict[str, Any]) -> dict[str, int]:
    """A period's statistics as a trend row (the same sums the trend query makes)."""
    pp = s["per_priority"].values()
    return {"tickets": s["tickets"], "fr_n": s["fr"]["n"], "fr_sum": s["fr"]["sum_us"] or 0, "res_n": s["res"]["n"],
            "res_sum": s["res"]["sum_us"] or 0, "resolved": s["resolved"], "fcr": s["fcr"], "answered": s["answered"],
            "satisfied": s["satisfied"], "fr_met": sum(p["fr_met"] for p in pp), "fr_sla_n": sum(p["fr_n"] for p in pp)}


def _trend_point(month: str, t: dict[str, int] | None) -> dict[str, Any]:
    t = t or {}
    g = lambda k: t.get(k, 0)
    return {"period": month, "tickets": g("tickets"),
            "first_response_avg_s": figures.out(figures.mean_s(g("fr_sum"), g("fr_n"))),
            "resolution_avg_s": figures.out(figures.mean_s(g("res_sum"), g("res_n"))),
            "fcr_rate": figures.out(figures.share(g("fcr"), g("resolved"))),
            "csat": figures.out(figures.share(g("satisfied"), g("answered"))),
            "first_response_compliance_overall": figures.out(figures.share(g("fr_met"), g("fr_sla_n")))}


async def live(pool: asyncpg.Pool, period: Period, *, tz: ZoneInfo, now: datetime) -> dict[str, Any]:
    """The review of ``period`` computed now from the facts (the contract's shape, plus extras)."""
    return (await computed(pool, period, tz=tz, now=now))[0]


async def computed(pool: asyncpg.Pool, period: Period, *, tz: ZoneInfo, now: datetime
                   ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the review of ``period`` computed now, its exact statistics — what a snapshot keeps).

    The previous period and the trend's months that are published are read from their snapshots'
    statistics (the figures the earlier review showed, exact); the rest is scanned, every scan on one
    database snapshot, as many at once as the report's connections allow."""
    prev = period.previous()
    months = periods.trend_months(period)
    # a month's own trend point comes from its figures: the trend covers only the 11 months before it
    scan = months[:-1] if period.kind == "month" else months
    async with store.consistent(pool, store.report_width(pool)) as conns:
        frozen = await store.frozen_stats(conns[0], periods=sorted({prev.name, *(m.name for m in scan)}))
        jobs = store.stats_jobs(start=period.start(tz), end=period.end(tz), backlog_at=min(period.end(tz), now))
        n_cur = len(jobs)
        if prev.name not in frozen:
            jobs += store.stats_jobs(start=prev.start(tz), end=prev.end(tz), backlog_at=min(prev.end(tz), now))
        live_months = [i for i, m in enumerate(scan) if m.name not in frozen]
        if live_months:  # one scan over the consecutive months from the first to the last not published
            span = scan[live_months[0]:live_months[-1] + 1]
            jobs.append(lambda c: store.trend(c, months=[(m.name, m.start(tz)) for m in span], end=span[-1].end(tz)))
        jobs.append(lambda c: _actions(c, period, tz, now))
        results = await store.run_on(conns, jobs)
    cur_s = store.merge_stats(results[:n_cur])
    prev_s = frozen.get(prev.name) or store.merge_stats(results[n_cur:len(results) - 1 - bool(live_months)])
    scanned = results[-2] if live_months else {}
    actions = results[-1]
    trend = {m.name: _trend_sums(frozen[m.name]) if m.name in frozen else scanned.get(m.name) for m in scan}
    if period.kind == "month":
        trend[period.name] = _trend_sums(cur_s)
    cur_v, prev_v = figures.values(cur_s), figures.values(prev_s)
    body = {
        "period": period.name, "previous_period": prev.name, "tz": tz.key, "kind": period.kind,
        "start": period.start(tz).isoformat(), "end": period.end(tz).isoformat(),
        "complete": period.end(tz) <= now, "computed_at": now.isoformat(), "source": "live",
        "previous_source": "snapshot" if prev.name in frozen else "live",
        "metrics": figures.combine(cur_v, prev_v),
        "breakdowns": figures.combine(figures.breakdown(cur_s["groups"]), figures.breakdown(prev_s["groups"])),
        "complaint_analysis": figures.complaint_analysis(cur_s["complaint_groups"], cur_s["complaints"]),
        "top_categories": figures.top_categories(cur_s["top"], cur_s["tickets"]),
        "trend": [_trend_point(m.name, trend.get(m.name)) for m in months],
        "actions": actions,
        "definitions": DEFINITIONS,
    }
    return body, cur_s


async def _actions(conn: asyncpg.Connection, period: Period, tz: ZoneInfo, now: datetime) -> list[dict[str, Any]]:
    """The period's improvement actions, each with the following period's value of its figure."""
    actions = await store.actions_for_period(conn, period=period.name)
    following = period.following()
    next_values = (figures.values(await _stats(conn, following, tz, now))
                   if actions and following.start(tz) <= now else None)
    return [_action_view(a, next_values, following.name, now) for a in actions]


def _lookup(values: dict[str, Any] | None, metric: str) -> Any:
    node: Any = values
    for part in metric.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return None if isinstance(node, dict) else figures.out(node)


def _action_view(a: dict[str, Any], next_values: dict[str, Any] | None, following: str, now: datetime
                 ) -> dict[str, Any]:
    """An action beside its metric: overdue when past its deadline and not done; the following period's
    value against its target (null until that period has begun)."""
    view = {**a, "overdue": a["status"] not in ("done", "cancelled") and a["deadline"] < now.date()}
    view["deadline"] = a["deadline"].isoformat()
    view["following_period"] = following
    view["following_value"] = _lookup(next_values, a["metric"]) if next_values else None
    return view


async def review(pool: asyncpg.Pool, period: Period, *, tz: ZoneInfo, now: datetime, recompute: bool = False
                 ) -> dict[str, Any]:
    """The published snapshot when the period has one (with the live differences on ``recompute``),
    else the live review. A published review never silently changes."""
    async with pool.acquire() as conn:
        snap = await store.get_snapshot(conn, period=period.name)
    if snap is None:
        return await live(pool, period, tz=tz, now=now)
    body = {**snap["body"], "source": "snapshot", "frozen_at": snap["frozen_at"].isoformat()}
    async with pool.acquire() as conn:  # actions come after a review is published: always the live ones
        body["actions"] = await _actions(conn, period, tz, now)
    if recompute:
        fresh = await live(pool, period, tz=tz, now=now)
        body["differences"] = differences(snap["body"]["metrics"], fresh["metrics"])
    return body


def differences(frozen: dict[str, Any], fresh: dict[str, Any], prefix: str = "") -> list[dict[str, Any]]:
    """Every figure whose value changed since the snapshot: ``{metric, published, now}``."""
    out = []
    for key in sorted(set(frozen) | set(fresh)):
        a, b = frozen.get(key) or {}, fresh.get(key) or {}
        name = f"{prefix}{key}"
        if "value" in a or "value" in b:
            if a.get("value") != b.get("value"):
                out.append({"metric": name, "published": a.get("value"), "now": b.get("value")})
        else:
            out.extend(differences(a, b, f"{name}."))
    return out


def headline(body: dict[str, Any]) -> dict[str, Any]:
    return {k: body["metrics"][k] for k in figures.HEADLINE_KEYS if k in body["metrics"]}


_DIM_COLUMNS = {"channel": "channel", "category": "category", "priority": "priority", "department": "department",
                "agent": "agent"}


def _base(name: str) -> str:
    for suffix in ("_avg_s", "_median_s", "_p90_s"):
        if name.endswith(suffix) and name[: -len(suffix)] in store.POPULATIONS:
            return name[: -len(suffix)]
    return name


def _group_value(label: str) -> str | None:
    return None if label == "unknown" else label


def resolve_metric(metric: str) -> tuple[str, tuple[str, str | None] | None]:
    """``metric`` (as on the page's links) -> (population key, optional (column, value)); 422 if unknown."""
    parts = metric.split(".")
    group = None
    if parts[0] == "categories" and len(parts) == 2:
        return "tickets", ("category", _group_value(parts[1]))
    if parts[0] == "breakdowns" and len(parts) in (3, 4) and parts[1] in _DIM_COLUMNS:
        group = (_DIM_COLUMNS[parts[1]], _group_value(parts[2]))
        parts = [parts[3] if len(parts) == 4 else "tickets"]
    elif parts[0] in ("first_response_compliance", "resolution_compliance") and len(parts) == 2:
        group = ("priority", _group_value(parts[1]))
        parts = parts[:1]
    base = _base(parts[0]) if len(parts) == 1 else None
    if base is None or (base not in store.POPULATIONS and base != "backlog_end"):
        raise DomainError("metric", f"{metric!r} is not a figure of the review (see the definitions)")
    return base, group


async def tickets(pool: asyncpg.Pool, period: Period, *, metric: str, tz: ZoneInfo, now: datetime, limit: int
                  ) -> dict[str, Any]:
    """The tickets behind one figure: who is measured (the denominator) and who counts (the numerator)."""
    base, group = resolve_metric(metric)
    async with pool.acquire() as conn:
        if base == "backlog_end":
            n, rows = await store.backlog_tickets(conn, at=min(period.end(tz), now), limit=limit)
            k = n
        else:
            population, counts, value = store.POPULATIONS[base]
            n, k, rows = await store.tickets_behind(conn, start=period.start(tz), end=period.end(tz),
                                                    population=population, counts=counts, value=value,
                                                    group=group, limit=limit)
    for r in rows:
        r["received_at"] = r["received_at"].isoformat()
        if base.startswith(("first_response", "resolution")) and r["value"] is not None \
                and not base.endswith(("compliance", "compliance_overall")):
            r["value"] = figures.out(figures.seconds_from_us(r["value"]))
    return {"period": period.name, "metric": metric, "measured": n, "counted": k, "truncated": n > len(rows),
            "tickets": rows}
