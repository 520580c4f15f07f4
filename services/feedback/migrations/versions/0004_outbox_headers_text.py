"""The outbox's headers are stored as text, not jsonb: nothing queries inside them, and jsonb cost a parse per insert
and a re-serialisation per claim.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from shared.migrations import outbox_headers_to_jsonb as downgrade
from shared.migrations import outbox_headers_to_text as upgrade

__all__ = ["downgrade", "upgrade"]

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None
