"""Figure arithmetic and definitions — pure. Written once here; returned with every review.

The store hands over exact sufficient statistics (counts, sums of whole microseconds, the middle
values); everything is computed in exact fractions and rounded only for the answer:
durations to 0.001 s, rates and changes to 4 decimals (half to even). ``change`` is computed from
the unrounded values: ``(value - previous) / previous``, null when previous is 0 or null.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from shared.events import CATEGORIES

US = 1_000_000
PRIORITIES = ("P1", "P2", "P3", "P4")


class Seconds(Fraction):
    """A duration in seconds (rounded to 0.001 s in the answer)."""


Exact = int | Fraction | None


def seconds_from_us(us: float | Fraction | None) -> Seconds | None:
    return None if us is None else Seconds(Fraction(us) / US)


def mean_s(total_us: int | None, count: int) -> Seconds | None:
    return None if not count or total_us is None else Seconds(Fraction(int(total_us), count * US))


def median_s(d: dict[str, Any]) -> Seconds | None:
    """The median from twice its value (the sum of the two middle values; exact)."""
    return None if d["median2_us"] is None else Seconds(Fraction(int(d["median2_us"]), 2 * US))


def share(part: int, whole: int) -> Fraction | None:
    return None if not whole else Fraction(int(part), int(whole))


def change(value: Exact, previous: Exact) -> Fraction | None:
    if value is None or previous is None or previous == 0:
        return None
    return (Fraction(value) - Fraction(previous)) / Fraction(previous)


def out(value: Exact) -> int | float | None:
    """The JSON number for an exact value: seconds to 0.001, rates to 4 decimals, counts as they are."""
    if value is None:
        return None
    if isinstance(value, Seconds):
        return float(round(Fraction(value), 3))
    if isinstance(value, Fraction):
        return float(round(value, 4))
    return int(value)


def triplet(value: Exact, previous: Exact) -> dict[str, Any]:
    ch = change(value, previous)
    return {"value": out(value), "previous": out(previous), "change": None if ch is None else float(round(ch, 4))}


def combine(current: Any, previous: Any) -> Any:
    """Every leaf of ``current`` as ``{value, previous, change}`` against the same leaf of ``previous``."""
    if isinstance(current, dict) or isinstance(previous, dict):
        cur = current if isinstance(current, dict) else {}
        prev = previous if isinstance(previous, dict) else {}
        keys = list(cur) + [k for k in prev if k not in cur]
        return {k: combine(cur.get(k), prev.get(k)) for k in keys}
    return triplet(current, previous)


# ---- from the store's statistics to exact values ---------------------------------------------------


def durations(prefix: str, d: dict[str, Any]) -> dict[str, Exact]:
    """``<prefix>_avg_s``, ``_median_s``, ``_p90_s`` from ``{n, sum_us, median2_us, p90_us}``."""
    return {f"{prefix}_avg_s": mean_s(d["sum_us"], d["n"]), f"{prefix}_median_s": median_s(d),
            f"{prefix}_p90_s": seconds_from_us(d["p90_us"])}


def compliance(per_priority: dict[str, dict[str, int]], metric: str) -> dict[str, Fraction | None]:
    return {p: share(per_priority.get(p, {}).get(f"{metric}_met", 0), per_priority.get(p, {}).get(f"{metric}_n", 0))
            for p in PRIORITIES}


def headline(s: dict[str, Any]) -> dict[str, Exact]:
    """The figures that are ratios of one period's counts (every contract key but the objects)."""
    return {
        "tickets": s["tickets"],
        "first_response_avg_s": mean_s(s["fr"]["sum_us"], s["fr"]["n"]),
        "first_response_median_s": median_s(s["fr"]),
        "resolution_avg_s": mean_s(s["res"]["sum_us"], s["res"]["n"]),
        "resolution_median_s": median_s(s["res"]),
        "fcr_rate": share(s["fcr"], s["resolved"]),
        "csat": share(s["satisfied"], s["answered"]),
        "survey_response_rate": share(s["answered"], s["sent"]),
        "reopen_rate": share(s["reopened"], s["resolved"]),
        "repeat_complaint_rate": share(s["repeats"], s["complaints"]),
    }


def values(s: dict[str, Any]) -> dict[str, Any]:
    """Every figure of one period, exact, keyed as in the answer's ``metrics``."""
    v: dict[str, Any] = headline(s)
    v["first_response_compliance"] = compliance(s["per_priority"], "fr")
    v["categories"] = {**dict.fromkeys(CATEGORIES, 0), **s["categories"]}
    v.update({"first_response_p90_s": seconds_from_us(s["fr"]["p90_us"]),
              "resolution_p90_s": seconds_from_us(s["res"]["p90_us"])})
    v.update(durations("first_response_business", s["fr_bus"]))
    v.update(durations("resolution_business", s["res_bus"]))
    v["resolution_compliance"] = compliance(s["per_priority"], "res")
    v["first_response_compliance_overall"] = share(sum(p.get("fr_met", 0) for p in s["per_priority"].values()),
                                                   sum(p.get("fr_n", 0) for p in s["per_priority"].values()))
    v.update({"escalation_rate": share(s["escalated"], s["tickets"]), "backlog_end": s["backlog"],
              "resolved": s["resolved"], "complaints": s["complaints"], "surveys_sent": s["sent"],
              "surveys_answered": s["answered"]})
    v.update({"next_update_breaches": s["nu_breached"],
              "next_update_compliance": share(s["nu_met"], s["nu_met"] + s["nu_breached"])})
    return v


def breakdown(groups: dict[str, dict[str, dict[str, int]]]) -> dict[str, dict[str, dict[str, Exact]]]:
    """Per dimension and value: tickets, mean first response and resolution, FCR rate."""
    return {dim: {val: {"tickets": g["tickets"], "first_response_avg_s": mean_s(g["fr_sum"], g["fr_n"]),
                        "resolution_avg_s": mean_s(g["res_sum"], g["res_n"]), "fcr_rate": share(g["fcr"], g["resolved"])}
                  for val, g in rows.items()}
            for dim, rows in groups.items()}


def top_categories(top: dict[str, dict[str, Any]], total: int, limit: int = 5) -> list[dict[str, Any]]:
    """"fault 40 %, of which power modules 60 %": the largest categories, each with its sub-items' shares."""
    ranked = sorted(top.items(), key=lambda kv: (-kv[1]["n"], kv[0]))[:limit]
    return [{"category": cat, "tickets": t["n"], "share": out(share(t["n"], total)),
             "sub_items": [{"sub_item": sub, "tickets": n, "share": out(share(n, t["n"]))}
                           for sub, n in sorted(t["sub_items"].items(), key=lambda kv: (-kv[1], kv[0]))]}
            for cat, t in ranked]


def complaint_analysis(groups: dict[str, dict[str, int]], total: int) -> dict[str, list[dict[str, Any]]]:
    return {dim: [{"key": k, "complaints": n, "share": out(share(n, total))}
                  for k, n in sorted(rows.items(), key=lambda kv: (-kv[1], kv[0]))]
            for dim, rows in groups.items()}


HEADLINE_KEYS = ("tickets", "first_response_avg_s", "resolution_avg_s", "fcr_rate", "csat",
                 "first_response_compliance_overall", "repeat_complaint_rate")
