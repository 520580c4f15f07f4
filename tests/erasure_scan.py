"""Where a value is still stored: every text-like column of every table of a service's database, and its Redis keys.

The right-to-be-forgotten tests of each service fill it with a person's data, erase the person and assert that none of
their values is found any more. Scanning every column (rather than the ones a test author thought of) is what finds
the place nobody remembered: a new table, an outbox row, a JSON report.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.http_protection import StoredResponse

# uuid is scanned too: a person id in a uuid column is found by its text form.
_SCANNED_TYPES = ("uuid", "text", "character varying", "json", "jsonb", "bytea", "ARRAY")


def text_values(*values: object) -> list[str]:
    """Every non-empty string inside `values` (lists, tuples and dicts' values, at any depth), each on its own: what
    a scan looks for, so a tag or a goal text is found alone and not only as part of a whole."""
    found: list[str] = []
    for value in values:
        if isinstance(value, str):
            found.extend([value] if value else [])
        elif isinstance(value, dict):
            found.extend(text_values(*value.values()))
        elif isinstance(value, list | tuple):
            found.extend(text_values(*value))
    return found


async def columns_containing(engine: AsyncEngine, needle: str) -> list[str]:
    """Every `table.column` of the public schema (uuid, text, json, binary, arrays) holding `needle` in some row."""
    found: list[str] = []
    async with engine.connect() as conn:
        columns = (
            await conn.execute(
                text(
                    "SELECT table_name, column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND data_type = ANY(:types) ORDER BY table_name, column_name"
                ),
                {"types": list(_SCANNED_TYPES)},
            )
        ).all()
        for table, column, data_type in columns:
            if data_type == "bytea":
                condition = f"position(convert_to(:needle, 'UTF8') in \"{column}\") > 0"
            else:
                condition = f'position(:needle in "{column}"::text) > 0'
            hits = await conn.execute(text(f'SELECT count(*) FROM "{table}" WHERE {condition}'), {"needle": needle})
            if hits.scalar_one():
                found.append(f"{table}.{column}")
    return found


async def redis_keys_containing(redis: Any, needle: str) -> list[str]:
    """Every key of the Redis database whose name or value (string, hash, list, set, sorted set) holds `needle`."""
    wanted = needle.encode()
    found: list[str] = []
    async for key in redis.scan_iter(count=500):
        kind = (await redis.type(key)).decode()
        parts: Iterable[bytes]
        if kind == "string":
            parts = _readable(await redis.get(key) or b"")
        elif kind == "hash":
            parts = [part for item in (await redis.hgetall(key)).items() for part in item]
        elif kind == "list":
            parts = await redis.lrange(key, 0, -1)
        elif kind == "set":
            parts = await redis.smembers(key)
        elif kind == "zset":
            parts = await redis.zrange(key, 0, -1)
        else:
            parts = []
        if wanted in key or any(wanted in part for part in parts):
            found.append(key.decode(errors="replace"))
    return found


async def kept_answers_naming(redis: Any, needle: str) -> list[str]:
    """The Redis keys naming `needle` (redis_keys_containing), but for the rate limit's counters (``rl:…``): named by
    the caller's token subject (a person id in these tests), they hold a count and expire within the minute."""
    return [key for key in await redis_keys_containing(redis, needle) if not key.startswith("rl:")]


def _readable(value: bytes) -> list[bytes]:
    """A string value, plus the body of a response kept for an Idempotency-Key retry (stored base64-encoded)."""
    try:
        return [value, StoredResponse.loads(value).body]
    except (ValueError, KeyError, TypeError):
        return [value]


async def stored_anywhere(engine: AsyncEngine, redis: Any, values: Iterable[str]) -> dict[str, list[str]]:
    """For each value found somewhere: where (`table.column`, or `redis:<key>`). Empty when none is stored."""
    found: dict[str, list[str]] = {}
    for value in values:
        places = await columns_containing(engine, value)
        if redis is not None:
            places += [f"redis:{key}" for key in await redis_keys_containing(redis, value)]
        if places:
            found[value] = places
    return found
