"""Review's SQL for the facts — the only module (with ``report_sql``) that talks to the ``review`` schema."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import asyncpg
import orjson

S = "review"
CONSUMER = "review.events"
COLUMNS = (
    "received_at", "channel", "customer_key", "complaint", "complaint_type", "category", "sub_item", "cause",
    "responsibility", "priority", "department", "complaint_department", "assignee", "agent", "first_response_at",
    "first_resolved_at", "final_resolved_at", "closed_at", "first_outcome", "first_contact", "reopen_count",
    "escalations", "fr_us", "res_us", "fr_bus_us", "res_bus_us", "fr_sla", "res_sla", "fr_sla_business_s",
    "res_sla_business_s", "sla_calendar", "surveys_sent", "surveys_answered", "surveys_satisfied", "resolved_ats",
    "reopened_ats", "nu_met", "nu_breached",
)


async def claim_ids(conn: asyncpg.Connection, *, ids: list[str]) -> set[str]:
    """The event ids not processed before (inbox rows written in the caller's transaction)."""
    rows = await conn.fetch(
        f"INSERT INTO {S}.inbox (consumer, message_id) SELECT $1, unnest($2::text[])"
        " ON CONFLICT DO NOTHING RETURNING message_id", CONSUMER, ids)
    return {r["message_id"] for r in rows}


async def claim_seqs(conn: asyncpg.Connection, *, keys: list[tuple[str, str, int]]) -> set[tuple[str, str, int]]:
    """The (ticket, publisher, seq) triples not applied before: a copy of an event under another id
    (a publisher's retry) changes nothing."""
    if not keys:
        return set()
    rows = await conn.fetch(
        f"INSERT INTO {S}.applied (ticket_no, source, seq)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) ON CONFLICT DO NOTHING"
        " RETURNING ticket_no, source, seq",
        [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys])
    return {(r["ticket_no"], r["source"], r["seq"]) for r in rows}


async def lock_facts(conn: asyncpg.Connection, *, tickets: list[str]) -> dict[str, dict[str, Any]]:
    """Each ticket's state, its row locked until commit (a stub fact and state for a ticket not seen yet).
    Every write of a fact goes through here first, so the state row's lock guards the fact row too."""
    await conn.execute(
        f"WITH stub AS (INSERT INTO {S}.facts (ticket_no) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING)"
        f" INSERT INTO {S}.fact_states (ticket_no) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING", tickets)
    rows = await conn.fetch(
        f"SELECT ticket_no, state FROM {S}.fact_states WHERE ticket_no = ANY($1::text[]) ORDER BY ticket_no"
        " FOR UPDATE", tickets)
    return {r["ticket_no"]: orjson.loads(r["state"]) for r in rows}


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return [_json(v) for v in value]
    return value


async def save_facts(conn: asyncpg.Connection, *, rows: list[dict[str, Any]]) -> None:
    """Write each ``{"ticket_no", "state", <columns>}``: the facts' columns and the states (one statement
    for the lot).

    Each row is reached by one primary-key probe, then by its ``ctid`` (the LIMIT keeps the probe a
    nested loop, whatever the statistics say): joined to a record set (which the planner guesses at 100
    rows) or to ``ticket_no = ANY(...)``, the plan made while the tables were young read every fact
    per batch (3.8 ms a batch at 10,000 facts; 1.4 ms at 2,000 in the bench). The rows are already locked
    (``lock_facts``), so no ``ctid`` moves under the statement."""
    payload = orjson.dumps([{k: _json(v) for k, v in r.items()} for r in rows]).decode()
    sets = ", ".join(f"{c} = x.{c}" for c in COLUMNS)
    await conn.execute(
        f"WITH st AS (UPDATE {S}.fact_states s SET state = x.state"
        f"  FROM (SELECT r.state, l.tid FROM jsonb_to_recordset($1::jsonb) AS r(ticket_no text, state jsonb)"
        f"        CROSS JOIN LATERAL (SELECT g.ctid AS tid FROM {S}.fact_states g"
        f"                            WHERE g.ticket_no = r.ticket_no LIMIT 1) l) x"
        f"  WHERE s.ctid = x.tid)"
        f" UPDATE {S}.facts f SET {sets}, updated_at = now()"
        f" FROM (SELECT r.*, l.tid FROM jsonb_populate_recordset(NULL::{S}.facts, $1::jsonb) r"
        f"       CROSS JOIN LATERAL (SELECT g.ctid AS tid FROM {S}.facts g WHERE g.ticket_no = r.ticket_no LIMIT 1) l) x"
        f" WHERE f.ctid = x.tid",
        payload)


async def reset(conn: asyncpg.Connection) -> int:
    """Empty the facts and both idempotency records (for a rebuild); returns how many facts were dropped."""
    n = await conn.fetchval(f"SELECT count(*) FROM {S}.facts")
    await conn.execute(f"TRUNCATE {S}.facts, {S}.fact_states, {S}.applied")
    await conn.execute(f"DELETE FROM {S}.inbox WHERE consumer = $1", CONSUMER)
    return n


async def counts(conn: asyncpg.Connection) -> dict[str, int]:
    row = await conn.fetchrow(
        f"SELECT (SELECT count(*) FROM {S}.facts) AS facts,"
        f" (SELECT count(*) FROM {S}.facts WHERE received_at IS NULL) AS partial,"
        f" (SELECT count(*) FROM {S}.applied) AS applied")
    return dict(row)


# ---- the figures' statistics for one period [start, end) -------------------------------------------

_IN = "received_at >= $1 AND received_at < $2"


def _dur(cols: tuple[str, ...]) -> str:
    """Count, sum, median and p90 of each column, exact, with one sort per column: the sorted values
    (``array_agg ... ORDER BY``), then the median as the sum of the two middle values (``_mid2``; the
    same one twice for an odd count) and the nearest-rank p90 (index ceil(9n/10), in integers)."""
    inner = ", ".join(f"count({c}) AS {c}_n, sum({c}) AS {c}_sum,"
                      f" array_agg({c} ORDER BY {c}) FILTER (WHERE {c} IS NOT NULL) AS {c}_sorted" for c in cols)
    outer = ", ".join(f"{c}_n, {c}_sum, {c}_sorted[({c}_n::int + 1) / 2] + {c}_sorted[{c}_n::int / 2 + 1] AS {c}_mid2,"
                      f" {c}_sorted[(9 * {c}_n::int + 9) / 10] AS {c}_p90" for c in cols)
    return f"SELECT {outer} FROM (SELECT {inner} FROM {S}.facts WHERE {_IN}) d"


# The distributions: medians and p90s need every value sorted (one sort per column, one scan for the
# four); the additive sums come from the cells below.
_DURATIONS = _dur(("fr_us", "res_us", "fr_bus_us", "res_bus_us"))

DIMENSIONS = ("channel", "category", "priority", "department", "agent")
_CELL_SUMS = ("tickets", "fr_n", "fr_sum", "res_n", "res_sum", "resolved", "fcr", "reopened", "sent", "answered",
              "satisfied", "escalated", "complaints", "nu_met", "nu_breached", "fr_met", "fr_sla_n", "res_met",
              "res_sla_n")
# One pass over the period: the finest cells (every dimension at once, one hash look-up and one set of
# aggregates per ticket), then each breakdown, the sub-items and the period's totals (the empty set)
# rolled up from the cells — exact sums either way, a fraction of grouping sets over the rows.
_GROUPS = f"""
WITH cells AS (
    SELECT channel, category, sub_item, priority, department, agent,
           count(*) AS tickets, count(fr_us) AS fr_n, sum(fr_us) AS fr_sum, count(res_us) AS res_n,
           sum(res_us) AS res_sum, count(first_resolved_at) AS resolved,
           count(*) FILTER (WHERE first_resolved_at IS NOT NULL AND first_contact) AS fcr,
           count(*) FILTER (WHERE first_resolved_at IS NOT NULL AND reopen_count > 0) AS reopened,
           sum(surveys_sent) AS sent, sum(surveys_answered) AS answered, sum(surveys_satisfied) AS satisfied,
           count(*) FILTER (WHERE escalations > 0) AS escalated, count(*) FILTER (WHERE complaint) AS complaints,
           sum(nu_met) AS nu_met, sum(nu_breached) AS nu_breached,
           count(*) FILTER (WHERE fr_sla = 'met') AS fr_met, count(fr_sla) AS fr_sla_n,
           count(*) FILTER (WHERE res_sla = 'met') AS res_met, count(res_sla) AS res_sla_n
    FROM {S}.facts WHERE {_IN}
    GROUP BY channel, category, sub_item, priority, department, agent)
SELECT GROUPING(channel, category, priority, department, agent, sub_item) AS g, channel, category, priority,
       department, agent, sub_item, {", ".join(f"coalesce(sum({c}), 0) AS {c}" for c in _CELL_SUMS)}
FROM cells
GROUP BY GROUPING SETS ((channel), (category), (priority), (department), (agent), (category, sub_item), ())"""
# GROUPING() bit masks (1 = not grouped by; the first argument is the highest bit) -> which set a row is
_ALL6 = 0b111111
_SET_OF = {_ALL6 ^ (1 << (5 - i)): dim for i, dim in enumerate(("channel", "category", "priority", "department",
                                                              "agent"))}
_SUB_ITEMS = _ALL6 ^ (1 << 4) ^ 1
_TOTALS = _ALL6

_COMPLAINTS = f"""
SELECT GROUPING(complaint_type, responsibility, complaint_department) AS g, complaint_type, responsibility,
       complaint_department, count(*) AS n
FROM {S}.facts WHERE {_IN} AND complaint
GROUP BY GROUPING SETS ((complaint_type), (responsibility), (complaint_department))"""

REPEAT_WINDOW = "interval '720 hours'"  # 30 days of 24 h
_REPEATS = f"""
SELECT count(*) FROM {S}.facts c
WHERE c.complaint AND c.received_at >= $1 AND c.received_at < $2 AND c.customer_key IS NOT NULL
  AND EXISTS (SELECT 1 FROM {S}.facts o WHERE o.complaint AND o.customer_key = c.customer_key
              AND o.ticket_no <> c.ticket_no AND o.received_at >= c.received_at - {REPEAT_WINDOW}
              AND o.received_at < c.received_at)"""

# Open at E: received before E, not closed before E, and not resolved at E (no resolution before E,
# or a reopen after the last one).
_OPEN_AT = """f.received_at < $1 AND (f.closed_at IS NULL OR f.closed_at >= $1)
  AND (f.final_resolved_at IS NULL
       OR ((f.final_resolved_at >= $1 OR f.reopen_count > 0)
           AND NOT coalesce((SELECT max(x) FROM unnest(f.resolved_ats) x WHERE x < $1)
                            > coalesce((SELECT max(y) FROM unnest(f.reopened_ats) y WHERE y < $1), '-infinity'),
                            false)))"""
_BACKLOG = f"SELECT count(*) FROM {S}.facts f WHERE {_OPEN_AT}"

_TREND = f"""
SELECT width_bucket(received_at, $3::timestamptz[]) AS bucket, count(*) AS tickets,
       count(fr_us) AS fr_n, coalesce(sum(fr_us), 0) AS fr_sum, count(res_us) AS res_n, coalesce(sum(res_us), 0) AS res_sum,
       count(first_resolved_at) AS resolved, count(*) FILTER (WHERE first_resolved_at IS NOT NULL AND first_contact) AS fcr,
       coalesce(sum(surveys_answered), 0) AS answered, coalesce(sum(surveys_satisfied), 0) AS satisfied,
       count(*) FILTER (WHERE fr_sla = 'met' AND priority IS NOT NULL) AS fr_met,
       count(fr_sla) FILTER (WHERE priority IS NOT NULL) AS fr_sla_n
FROM {S}.facts WHERE {_IN} GROUP BY 1 ORDER BY 1"""


REPORT_WORK_MEM = "256MB"
_acquiring: asyncio.Lock | None = None


@contextlib.asynccontextmanager
async def consistent(pool: asyncpg.Pool, n: int) -> AsyncIterator[list[asyncpg.Connection]]:
    """``n`` read-only connections that all see one snapshot (``pg_export_snapshot``), so a report's
    queries can run in parallel and still agree with each other exactly."""
    global _acquiring
    async with contextlib.AsyncExitStack() as stack:
        _acquiring = _acquiring or asyncio.Lock()
        async with _acquiring:  # all n at once, one report at a time: two reports never wait on each other
            conns = [await stack.enter_async_context(pool.acquire()) for _ in range(n)]
        for c in conns:
            await stack.enter_async_context(c.transaction(isolation="repeatable_read", readonly=True))
        snapshot = await conns[0].fetchval("SELECT pg_export_snapshot()")
        for c in conns[1:]:
            await c.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
        for c in conns:  # sorts (medians) and grouping sets in memory; no JIT compile for one-off scans
            # (and no parallel workers: the report's own connections already keep every core busy)
            await c.execute(f"SET LOCAL work_mem = '{REPORT_WORK_MEM}'; SET LOCAL jit = off;"
                            " SET LOCAL max_parallel_workers_per_gather = 0")
        yield conns


def _d(row: asyncpg.Record, col: str) -> dict[str, Any]:
    """``{n, sum_us, median2_us (twice the median: an integer), p90_us}`` of one duration column."""
    return {"n": row[f"{col}_n"], "sum_us": None if row[f"{col}_sum"] is None else int(row[f"{col}_sum"]),
            "median2_us": row[f"{col}_mid2"], "p90_us": row[f"{col}_p90"]}


def _label(value: Any) -> str:
    return "unknown" if value is None else str(value)


async def _durations_part(conn: asyncpg.Connection, start: datetime, end: datetime, _: datetime) -> dict[str, Any]:
    row = await conn.fetchrow(_DURATIONS, start, end)
    return {"fr": _d(row, "fr_us"), "res": _d(row, "res_us"), "fr_bus": _d(row, "fr_bus_us"),
            "res_bus": _d(row, "res_bus_us")}


_TOTAL_KEYS = ("tickets", "resolved", "fcr", "reopened", "sent", "answered", "satisfied", "escalated", "complaints",
               "nu_met", "nu_breached")


async def _groups_part(conn: asyncpg.Connection, start: datetime, end: datetime, _: datetime) -> dict[str, Any]:
    groups: dict[str, dict[str, dict[str, int]]] = {d: {} for d in DIMENSIONS}
    per_priority: dict[str, dict[str, int]] = {}
    top: dict[str, dict[str, Any]] = {}
    totals: dict[str, int] = dict.fromkeys(_TOTAL_KEYS, 0)
    for r in await conn.fetch(_GROUPS, start, end):
        if r["g"] == _TOTALS:
            totals = {k: int(r[k]) for k in _TOTAL_KEYS}
            continue
        if r["g"] == _SUB_ITEMS:
            t = top.setdefault(_label(r["category"]), {"n": 0, "sub_items": {}})
            if r["sub_item"] is not None:
                t["sub_items"][r["sub_item"]] = int(r["tickets"])
            continue
        dim = _SET_OF[r["g"]]
        cell = {k: int(r[k]) for k in ("tickets", "fr_n", "fr_sum", "res_n", "res_sum", "resolved", "fcr")}
        groups[dim][_label(r[dim])] = cell
        if dim == "priority" and r["priority"]:
            per_priority[r["priority"]] = {"fr_met": int(r["fr_met"]), "fr_n": int(r["fr_sla_n"]),
                                           "res_met": int(r["res_met"]), "res_n": int(r["res_sla_n"])}
    for cat, cell in groups["category"].items():
        top.setdefault(cat, {"n": 0, "sub_items": {}})["n"] = cell["tickets"]
    return {**totals, "groups": groups, "per_priority": per_priority, "top": top,
            "categories": {k: v["tickets"] for k, v in groups["category"].items()}}


async def _complaints_part(conn: asyncpg.Connection, start: datetime, end: datetime, backlog_at: datetime
                           ) -> dict[str, Any]:
    complaints: dict[str, dict[str, int]] = {"type": {}, "responsibility": {}, "department": {}}
    for r in await conn.fetch(_COMPLAINTS, start, end):
        dim, col = {3: ("type", "complaint_type"), 5: ("responsibility", "responsibility"),
                    6: ("department", "complaint_department")}[r["g"]]
        complaints[dim][_label(r[col])] = r["n"]
    return {"complaint_groups": complaints, "repeats": await conn.fetchval(_REPEATS, start, end)}


async def _backlog_part(conn: asyncpg.Connection, start: datetime, end: datetime, backlog_at: datetime
                        ) -> dict[str, Any]:
    return {"backlog": await conn.fetchval(_BACKLOG, backlog_at)}


# the parts of a period's statistics, each one query or two; the heaviest first
STATS_PARTS = (_durations_part, _groups_part, _complaints_part, _backlog_part)
Job = Callable[[asyncpg.Connection], Awaitable[Any]]


def stats_jobs(*, start: datetime, end: datetime, backlog_at: datetime) -> list[Job]:
    """A period's statistics as jobs for ``run_on`` (merge their results with ``merge_stats``)."""
    return [functools.partial(_run_part, part, start, end, backlog_at) for part in STATS_PARTS]


async def _run_part(part: Any, start: datetime, end: datetime, backlog_at: datetime, conn: asyncpg.Connection
                    ) -> dict[str, Any]:
    return await part(conn, start, end, backlog_at)


def merge_stats(parts: list[dict[str, Any]]) -> dict[str, Any]:
    return {k: v for p in parts for k, v in p.items()}


async def run_on(conns: list[asyncpg.Connection], jobs: list[Job]) -> list[Any]:
    """Run ``jobs`` on ``conns`` (one query at a time on each), each on the next free connection, in
    the order given; the results in that order."""
    free: asyncio.Queue[asyncpg.Connection] = asyncio.Queue()
    for c in conns:
        free.put_nowait(c)

    async def one(job: Job) -> Any:
        conn = await free.get()
        try:
            return await job(conn)
        finally:
            free.put_nowait(conn)

    return list(await asyncio.gather(*(one(j) for j in jobs)))


async def period_stats(conn: asyncpg.Connection | list[asyncpg.Connection], *, start: datetime, end: datetime,
                       backlog_at: datetime) -> dict[str, Any]:
    """Exact sufficient statistics of the tickets received in ``[start, end)`` (see ``figures``). Given
    several connections on one snapshot (``consistent``), its scans run at once."""
    conns = conn if isinstance(conn, list) else [conn]
    return merge_stats(await run_on(conns, stats_jobs(start=start, end=end, backlog_at=backlog_at)))


def report_width(pool: asyncpg.Pool, wanted: int = 4) -> int:
    """How many connections a report may hold at once: at most ``wanted``, and always one fewer than the
    pool's size (at least one), so a small pool (HELPDESK_DB_POOL_MAX=3) still serves the consumer and
    /healthz while a report runs — a report never waits for connections it holds itself."""
    return max(1, min(wanted, pool.get_max_size() - 1))


async def trend(conn: asyncpg.Connection, *, months: list[tuple[str, datetime]], end: datetime
                ) -> dict[str, dict[str, int]]:
    """Headline sums per month; ``months`` are consecutive (name, local start), oldest first, ``end`` the
    last one's end."""
    starts = [m[1] for m in months]
    rows = await conn.fetch(_TREND, starts[0], end, starts)
    return {months[r["bucket"] - 1][0]: {k: int(v) for k, v in dict(r).items() if k != "bucket"} for r in rows}


# ---- snapshots and improvement actions -------------------------------------------------------------


async def get_snapshot(conn: asyncpg.Connection, *, period: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT period, frozen_at, body FROM {S}.snapshots WHERE period = $1", period)
    return None if row is None else {"period": row["period"], "frozen_at": row["frozen_at"],
                                     "body": orjson.loads(row["body"])}


async def save_snapshot(conn: asyncpg.Connection, *, period: str, body: dict[str, Any], frozen_at: datetime,
                        stats: dict[str, Any] | None = None) -> bool:
    """Freeze ``period`` once, with its exact statistics (what a later period's "previous" and trend
    read); False when it was frozen already (another replica, or a rerun)."""
    row = await conn.fetchval(
        f"INSERT INTO {S}.snapshots (period, frozen_at, body, stats) VALUES ($1, $2, $3::jsonb, $4::jsonb)"
        " ON CONFLICT DO NOTHING RETURNING 1", period, frozen_at, orjson.dumps(body).decode(),
        None if stats is None else orjson.dumps(stats).decode())
    return row is not None


async def frozen_stats(conn: asyncpg.Connection, *, periods: list[str]) -> dict[str, dict[str, Any]]:
    """The exact statistics of those of ``periods`` that are published (snapshots frozen before the
    statistics were kept have none, and are computed live)."""
    rows = await conn.fetch(f"SELECT period, stats FROM {S}.snapshots WHERE period = ANY($1::text[])"
                            " AND stats IS NOT NULL", periods)
    return {r["period"]: orjson.loads(r["stats"]) for r in rows}


_ACTION_COLS = "id, period, finding, metric, measure, owner, deadline, status, target_value, created_by, " \
               "created_at, updated_at"


def _action(row: asyncpg.Record) -> dict[str, Any]:
    a = dict(row)
    a["id"] = str(a["id"])
    a["created_at"], a["updated_at"] = a["created_at"].isoformat(), a["updated_at"].isoformat()
    return a


async def actions_for_period(conn: asyncpg.Connection, *, period: str | None) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT {_ACTION_COLS} FROM {S}.actions WHERE $1::text IS NULL OR period = $1 ORDER BY deadline, created_at",
        period)
    return [_action(r) for r in rows]


async def insert_action(conn: asyncpg.Connection, *, fields: dict[str, Any]) -> dict[str, Any]:
    cols = list(fields)
    row = await conn.fetchrow(
        f"INSERT INTO {S}.actions ({', '.join(cols)}) VALUES ({', '.join(f'${i}' for i in range(1, len(cols) + 1))})"
        f" RETURNING {_ACTION_COLS}", *fields.values())
    return _action(row)


async def update_action(conn: asyncpg.Connection, *, action_id: Any, fields: dict[str, Any]) -> dict[str, Any] | None:
    cols = list(fields)
    sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(cols, start=2))
    row = await conn.fetchrow(
        f"UPDATE {S}.actions SET {sets}, updated_at = now() WHERE id = $1 RETURNING {_ACTION_COLS}",
        action_id, *fields.values())
    return None if row is None else _action(row)


async def add_outbox(conn: asyncpg.Connection, *, event: Any) -> None:
    """Stage an event that is about no ticket (``review.published``) for the outbox relay."""
    await conn.execute(
        f"INSERT INTO {S}.outbox (event_id, routing_key, ticket_no, body) VALUES ($1, $2, NULL, $3)",
        event.id, event.type, event.to_bytes())


async def has_snapshot(conn: asyncpg.Connection, *, period: str) -> bool:
    return bool(await conn.fetchval(f"SELECT 1 FROM {S}.snapshots WHERE period = $1", period))


# ---- the tickets behind a figure -----------------------------------------------------------------

_REPEAT_EXPR = (f"(complaint AND customer_key IS NOT NULL AND EXISTS (SELECT 1 FROM {S}.facts o WHERE o.complaint"
                f" AND o.customer_key = f.customer_key AND o.ticket_no <> f.ticket_no"
                f" AND o.received_at >= f.received_at - {REPEAT_WINDOW} AND o.received_at < f.received_at))")
# metric -> (who is measured, who counts, the value shown)
POPULATIONS: dict[str, tuple[str, str, str]] = {
    "tickets": ("TRUE", "TRUE", "NULL"),
    "first_response": ("fr_us IS NOT NULL", "TRUE", "fr_us"),
    "resolution": ("res_us IS NOT NULL", "TRUE", "res_us"),
    "first_response_business": ("fr_bus_us IS NOT NULL", "TRUE", "fr_bus_us"),
    "resolution_business": ("res_bus_us IS NOT NULL", "TRUE", "res_bus_us"),
    "fcr_rate": ("first_resolved_at IS NOT NULL", "coalesce(first_contact, false)", "NULL"),
    "csat": ("surveys_answered > 0", "surveys_satisfied > 0", "surveys_satisfied"),
    "survey_response_rate": ("surveys_sent > 0", "surveys_answered > 0", "surveys_answered"),
    "reopen_rate": ("first_resolved_at IS NOT NULL", "reopen_count > 0", "reopen_count"),
    "repeat_complaint_rate": ("complaint", _REPEAT_EXPR, "NULL"),
    "escalation_rate": ("TRUE", "escalations > 0", "escalations"),
    "first_response_compliance": ("fr_sla IS NOT NULL", "fr_sla = 'met'", "NULL"),
    "first_response_compliance_overall": ("fr_sla IS NOT NULL", "fr_sla = 'met'", "NULL"),
    "resolution_compliance": ("res_sla IS NOT NULL", "res_sla = 'met'", "NULL"),
    "resolved": ("first_resolved_at IS NOT NULL", "TRUE", "NULL"),
    "complaints": ("complaint", "TRUE", "NULL"),
    "surveys_sent": ("surveys_sent > 0", "TRUE", "surveys_sent"),
    "surveys_answered": ("surveys_answered > 0", "TRUE", "surveys_answered"),
    "next_update_breaches": ("nu_breached > 0", "TRUE", "nu_breached"),
    "next_update_compliance": ("nu_met + nu_breached > 0", "nu_breached = 0", "nu_breached"),
}


async def tickets_behind(conn: asyncpg.Connection, *, start: datetime, end: datetime, population: str,
                         counts: str, value: str, group: tuple[str, str | None] | None, limit: int
                         ) -> tuple[int, int, list[dict[str, Any]]]:
    """(measured, counted, first ``limit`` rows) for a figure; ``group`` narrows to one column's value."""
    where, args = f"f.{_IN} AND ({population})", [start, end]
    if group is not None:
        col, val = group
        where += f" AND f.{col} IS NULL" if val is None else f" AND f.{col} = $3"
        if val is not None:
            args.append(val)
    row = await conn.fetchrow(f"SELECT count(*) AS n, count(*) FILTER (WHERE {counts}) AS k FROM {S}.facts f"
                              f" WHERE {where}", *args)
    rows = await conn.fetch(
        f"SELECT ticket_no, received_at, channel, category, priority, department, agent, ({counts}) AS counts,"
        f" {value} AS value FROM {S}.facts f WHERE {where} ORDER BY received_at, ticket_no LIMIT {int(limit)}", *args)
    return row["n"], row["k"], [dict(r) for r in rows]


async def backlog_tickets(conn: asyncpg.Connection, *, at: datetime, limit: int) -> tuple[int, list[dict[str, Any]]]:
    n = await conn.fetchval(_BACKLOG, at)
    rows = await conn.fetch(
        f"SELECT ticket_no, received_at, channel, category, priority, department, agent, true AS counts,"
        f" NULL AS value FROM {S}.facts f WHERE {_OPEN_AT} ORDER BY received_at, ticket_no LIMIT {int(limit)}", at)
    return n, [dict(r) for r in rows]
