"""What an erasure does outside the database transaction: the answers kept in Redis for Idempotency-Key retries."""

from __future__ import annotations

import uuid

from shared.http_protection import forget_stored_responses
from shared.service import Runtime


async def forget_cached_answers(runtime: Runtime, person_id: uuid.UUID) -> None:
    """Drop the kept answers that name the erased person (the POST creating them returned their whole profile).
    After the commit: the erasure stands whatever Redis does."""
    await forget_stored_responses(runtime.redis, runtime.settings.service_name, str(person_id))
