"""The test's own computation of the contract figures from the events it saw — written from the
contract's and the definitions' words, independently of the service's code."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

from shared.envelope import CloudEvent
from shared.events import CATEGORIES

PRIORITIES = ("P1", "P2", "P3", "P4")


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _us(a: datetime, b: datetime) -> int:
    d = b - a
    return (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds


def distinct(events: list[CloudEvent]) -> list[CloudEvent]:
    """Each event once: by id, and by (ticket, publisher, seq)."""
    ids, keys, out = set(), set(), []
    for e in events:
        key = (e.data.get("ticket_no"), e.source, e.data.get("seq"))
        if e.id in ids or key in keys or not e.data.get("ticket_no"):
            continue
        ids.add(e.id)
        keys.add(key)
        out.append(e)
    return out


def tickets(events: list[CloudEvent]) -> dict[str, dict[str, Any]]:
    """Per ticket what the figures need."""
    by: dict[str, list[CloudEvent]] = defaultdict(list)
    for e in distinct(events):
        by[e.data["ticket_no"]].append(e)
    out = {}
    for no, evs in by.items():
        evs.sort(key=lambda e: e.data["seq"])
        t: dict[str, Any] = {"ticket_no": no, "resolutions": [], "reopens": 0, "surveys": defaultdict(dict),
                             "fr": set(), "esc": 0, "category": None, "priority": None,
                             "next_update": {"sla.met": 0, "sla.breached": 0}}
        for e in evs:
            d = e.data
            if e.type == "ticket.created":
                t.update(received=_t(d["received_at"]), key=d.get("customer_key"),
                         block=d.get("complaint") is not None, channel=d["channel"])
            elif e.type == "ticket.routed":
                t["category"], t["priority"] = d["category"], d["priority"]  # ascending seq: the last wins
            elif e.type == "ticket.responded" and "first_response" not in t:
                t["first_response"] = _t(d["at"])
            elif e.type == "ticket.resolved":
                t["resolutions"].append(d)
            elif e.type == "ticket.reopened":
                t["reopens"] += 1
            elif e.type == "ticket.escalated":
                t["esc"] += 1
            elif e.type in ("sla.met", "sla.breached") and d["metric"] == "first_response":
                t["fr"].add(e.type)
            elif e.type in ("sla.met", "sla.breached") and d["metric"] == "next_update":
                t["next_update"][e.type] += 1  # every cycle ends once: each distinct event is one cycle
            elif e.type in ("survey.sent", "survey.completed", "survey.cancelled"):
                t["surveys"][d["survey_id"]][e.type] = d.get("overall")
        if "received" in t:
            out[no] = t
    return out


def _median(values: list[int]) -> Fraction | None:
    if not values:
        return None
    v, n = sorted(values), len(values)
    return Fraction(v[n // 2]) if n % 2 else Fraction(v[n // 2 - 1] + v[n // 2], 2)


def _s(us: Fraction | None) -> float | None:
    return None if us is None else float(round(us / 1_000_000, 3))


def _r(x: Fraction | None) -> float | None:
    return None if x is None else float(round(x, 4))


def _share(a: int, b: int) -> Fraction | None:
    return Fraction(a, b) if b else None


def _complaint(t: dict[str, Any]) -> bool:
    return t["block"] or t["category"] in ("complaint", "attitude")


def figures(all_tickets: dict[str, dict[str, Any]], start: datetime, end: datetime) -> dict[str, Any]:
    """Exact values (Fractions) of the contract figures for tickets received in [start, end)."""
    ts = [t for t in all_tickets.values() if start <= t["received"] < end]
    fr = [_us(t["received"], t["first_response"]) for t in ts if "first_response" in t]
    resolved = [t for t in ts if t["resolutions"]]
    res = [_us(t["received"], _t(t["resolutions"][0]["at"])) for t in resolved]
    surveys = [s for t in ts for s in t["surveys"].values()]
    answered = [s for s in surveys if "survey.completed" in s]
    sent = [s for s in surveys if "survey.completed" in s or ("survey.sent" in s and "survey.cancelled" not in s)]
    complaints = [t for t in ts if _complaint(t)]
    window = timedelta(hours=720)
    repeats = [c for c in complaints if c["key"] and any(
        o is not c and _complaint(o) and o["key"] == c["key"] and c["received"] - window <= o["received"] < c["received"]
        for o in all_tickets.values())]
    compliance = {}
    for p in PRIORITIES:
        clocks = [t for t in ts if t["priority"] == p and t["fr"]]
        compliance[p] = _share(sum(1 for t in clocks if t["fr"] == {"sla.met"}), len(clocks))
    cats: dict[str, int] = defaultdict(int, dict.fromkeys(CATEGORIES, 0))
    for t in ts:
        cats[t["category"] or "unknown"] += 1
    return {
        "tickets": len(ts),
        "first_response_avg_s": Fraction(sum(fr), len(fr)) if fr else None,
        "first_response_median_s": _median(fr),
        "resolution_avg_s": Fraction(sum(res), len(res)) if res else None,
        "resolution_median_s": _median(res),
        "fcr_rate": _share(sum(1 for t in resolved if t["resolutions"][0]["first_contact"]), len(resolved)),
        "csat": _share(sum(1 for s in answered if (s["survey.completed"] or 0) >= 4), len(answered)),
        "survey_response_rate": _share(len(answered), len(sent)),
        "reopen_rate": _share(sum(1 for t in resolved if t["reopens"]), len(resolved)),
        "repeat_complaint_rate": _share(len(repeats), len(complaints)),
        "first_response_compliance": compliance,
        "categories": dict(cats),
        "next_update_breaches": sum(t["next_update"]["sla.breached"] for t in ts),
        "next_update_compliance": _share(sum(t["next_update"]["sla.met"] for t in ts),
                                         sum(t["next_update"]["sla.met"] + t["next_update"]["sla.breached"]
                                             for t in ts)),
    }


def _out(key: str, v: Any) -> Any:
    if v is None:
        return None
    if key.endswith("_s"):
        return _s(v)
    if key in ("tickets", "categories", "next_update_breaches"):
        return int(v)
    return _r(v)


def _triplet(key: str, v: Any, p: Any) -> dict[str, Any]:
    ch = None if v is None or p is None or p == 0 else (Fraction(v) - Fraction(p)) / Fraction(p)
    return {"value": _out(key, v), "previous": _out(key, p), "change": _r(ch)}


def expected_metrics(cur: dict[str, Any], prev: dict[str, Any]) -> dict[str, Any]:
    """The contract's ``metrics`` as the JSON must show them."""
    out: dict[str, Any] = {}
    for key, v in cur.items():
        if isinstance(v, dict):
            names = list(v) + [k for k in prev[key] if k not in v]
            out[key] = {k: _triplet(key, v.get(k), prev[key].get(k)) for k in names}
        else:
            out[key] = _triplet(key, v, prev[key])
    return out
