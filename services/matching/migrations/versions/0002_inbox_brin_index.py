"""The inbox's received_at index becomes BRIN: it is only appended to and only scanned by range when pruning.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from shared.migrations import inbox_index_to_brin as upgrade
from shared.migrations import inbox_index_to_btree as downgrade

__all__ = ["downgrade", "upgrade"]

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None
