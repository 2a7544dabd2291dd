"""Helpers for the privacy tests: a customer with unique raw values, and a search of every schema."""

from __future__ import annotations

import uuid

import asyncpg

from shared.settings import Settings

SCHEMAS = ("intake", "routing", "sla", "notification", "survey", "review")


def _person() -> dict[str, str]:
    tag = uuid.uuid4().hex[:6]
    digits = f"{int(tag, 16) % 10**8:08d}"
    return {"name": f"欧阳娜娜{tag}", "phone": f"136 {digits[:4]} {digits[4:]}", "email": f"Nana.{tag}@Example.com",
            "id": f"wx-open-{tag}"}


def _raw_needles(p: dict[str, str]) -> list[str]:
    return [p["name"], p["phone"].replace(" ", ""), p["phone"], p["email"].lower(), p["email"], p["id"]]


async def _hits(needles: list[str]) -> list[str]:
    """Every (schema.table.column, needle) where a raw value still occurs, in text, JSON or bytes."""
    conn = await asyncpg.connect(Settings().database_url)
    try:
        cols = await conn.fetch(
            "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = ANY($1) AND data_type IN ('text', 'character varying', 'jsonb', 'json', 'bytea',"
            " 'ARRAY')", list(SCHEMAS))
        found = []
        for c in cols:
            ident, col = f'"{c["table_schema"]}"."{c["table_name"]}"', f'"{c["column_name"]}"'
            for needle in needles:
                if c["data_type"] == "bytea":  # bytes: the needle's UTF-8, in either case
                    where = (f"position(convert_to($1, 'UTF8') in {col}) > 0"
                             f" OR position(convert_to(lower($1), 'UTF8') in {col}) > 0")
                else:
                    where = f"lower({col}::text) LIKE '%' || lower($1) || '%'"
                if await conn.fetchval(f"SELECT count(*) FROM {ident} WHERE {where}", needle):
                    found.append(f"{c['table_schema']}.{c['table_name']}.{c['column_name']}: {needle}")
        return found
    finally:
        await conn.close()


