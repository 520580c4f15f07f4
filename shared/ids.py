"""Identifiers the platform mints: event ids and the primary keys of new rows.

UUIDv7 (RFC 9562): a millisecond timestamp followed by random bits. Ids made close in time sort close together,
so every B-tree they are inserted into (the consumers' inbox primary key, matches, meetings, people) grows at its
right edge instead of touching a random leaf page per row. Measured on the inbox (benchmarks/messaging_throughput.py,
docs/benchmarks.md): 9.5 → 4.9 µs of PostgreSQL CPU and 751 → 410 bytes of WAL per inserted event id, against
random UUIDv4. The ids stay globally unique without coordination (74 random bits per millisecond and process) and
are still plain `uuid.UUID` values everywhere.

The one thing a v7 id reveals is when it was minted (to the millisecond); for the rows that get these ids the
creation time is no secret (it is a column beside them). Tokens that must be unguessable keep `uuid4`.

`uuid_utils` rather than hand-written bit packing: the standard library gains `uuid.uuid7` only in Python 3.14, and
the Rust implementation mints one in under a microsecond (`uuid.uuid4` takes 1.7 µs here: a getrandom call per id).
"""

from __future__ import annotations

from uuid import UUID

import orjson
from uuid_utils.compat import uuid7


def new_id() -> UUID:
    """A fresh, time-ordered UUID (version 7)."""
    return uuid7()


def id_text(value: object) -> str:
    """``str(value)``, faster for a UUID: the hyphenated lowercase text every id travels as.

    orjson formats a UUID in Rust in 0.2 µs; `UUID.__str__` %-formats its hex digits in Python in 0.53 µs. The outbox
    writer formats three ids per event (event id, key, subject) and the consumer one or two.
    """
    if type(value) is UUID:
        return orjson.dumps(value)[1:-1].decode()
    return str(value)
