"""The report's medians and p90s, computed in Postgres from one sort per column (``store._dur``), against
the definitions in exact arithmetic: the median is the mean of the two middle values (even counts),
the p90 the smallest value with at least 90 % of values at or below it (nearest rank)."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from fractions import Fraction

import pytest

from services.review import figures, store

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _median(values: list[int]) -> Fraction:
    v, n = sorted(values), len(values)
    return Fraction(v[n // 2]) if n % 2 else Fraction(v[n // 2 - 1] + v[n // 2], 2)


def _p90(values: list[int]) -> int:
    return sorted(values)[math.ceil(Fraction(9, 10) * len(values)) - 1]


async def test_medians_and_p90s_are_exact_for_every_count(review):
    query = store._dur(("a", "b")).replace(f"{store.S}.facts", "pg_temp.vals")
    rng = random.Random(11)
    cases = [[], [7], [7, 7], [1, 2], [3, 1, 2], [2**40 + 1, 2**40 + 2]]
    cases += [[rng.randrange(0, 10**12) for _ in range(n)] for n in (*range(3, 41), 99, 100, 101, 1000, 1001)]
    cases += [[rng.choice((5, 9, 9, 12)) for _ in range(n)] for n in (10, 20, 21)]  # ties
    inside, outside = datetime(2026, 2, 10, tzinfo=UTC), datetime(2026, 3, 10, tzinfo=UTC)
    async with review.rt.pool.acquire() as conn, conn.transaction():
        await conn.execute("CREATE TEMP TABLE vals (received_at timestamptz, a bigint, b bigint) ON COMMIT DROP")
        for values in cases:
            await conn.execute("TRUNCATE pg_temp.vals")
            await conn.executemany("INSERT INTO pg_temp.vals VALUES ($1, $2, NULL)", [(inside, v) for v in values])
            await conn.execute("INSERT INTO pg_temp.vals VALUES ($1, 1, 1), ($2, NULL, 1)",  # not counted
                               outside, inside)
            row = await conn.fetchrow(query, datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))
            a = store._d(row, "a")
            assert a["n"] == len(values)
            if not values:
                assert a["median2_us"] is None and a["p90_us"] is None and a["sum_us"] is None
                continue
            assert a["sum_us"] == sum(values)
            assert figures.median_s(a) == Fraction(_median(values), figures.US), values
            assert a["p90_us"] == _p90(values), values
            b = store._d(row, "b")  # only the in-period NULL row's neighbour: one value
            assert (b["n"], b["median2_us"], b["p90_us"]) == (1, 2, 1)
