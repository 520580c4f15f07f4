"""The outbox's headers are stored as text, not jsonb: nothing queries inside them, and jsonb cost a parse per insert
and a re-serialisation per claim.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from shared.migrations import outbox_headers_to_jsonb as downgrade
from shared.migrations import outbox_headers_to_text as upgrade

__all__ = ["downgrade", "upgrade"]

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None
