"""What an erasure does outside the database transaction: the answers kept in Redis for Idempotency-Key retries."""

from __future__ import annotations

import uuid

from shared.service import Runtime


async def forget_cached_answers(runtime: Runtime, person_id: uuid.UUID) -> None:
    """Drop the kept answers that name the erased person (the POST creating them returned their whole profile).
    After the commit: the erasure stands whatever Redis does. The clean-up is the one matching's consumer runs."""
    await runtime.forget_answers_naming(person_id)
