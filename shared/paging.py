"""The one offset-paged list shape every list endpoint returns: ``{"items": [...], "next_offset": <int|null>}``.

A bare JSON array cannot say whether more rows exist; ``next_offset`` can. An endpoint fetches ``limit + 1`` rows
(``OFFSET offset LIMIT limit + 1``) and hands them to :meth:`OffsetPage.of`: the extra row only proves a next page
exists, so no endpoint counts its whole table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

ItemT = TypeVar("ItemT")
RowT = TypeVar("RowT")

MAX_OFFSET = 1_000_000
Offset = Annotated[
    int, Query(ge=0, le=MAX_OFFSET, description="Rows to skip: the `next_offset` of the previous page (0: the first).")
]
# One page size for every list of every service (default 100 where the list's function declares it), so one paging
# loop works against all four. 1000 was the largest any list took before: no client's page size is refused.
MAX_LIMIT = 1_000
DEFAULT_LIMIT = 100
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Page size: at most {MAX_LIMIT} items.")]


class OffsetPage(BaseModel, Generic[ItemT]):
    """One page of a list; pass `next_offset` as `offset` for the next one (null: this was the last)."""

    items: list[ItemT]
    next_offset: int | None = Field(description="`offset` of the next page; null on the last page.")

    @classmethod
    def of(cls, rows: Iterable[RowT], offset: int, limit: int, to_item: Callable[[RowT], ItemT]) -> OffsetPage[ItemT]:
        """The page of ``rows`` fetched with ``OFFSET offset LIMIT limit + 1`` (a row beyond ``limit``: more exist)."""
        fetched = list(rows)
        more = len(fetched) > limit
        return cls(items=[to_item(row) for row in fetched[:limit]], next_offset=offset + limit if more else None)
