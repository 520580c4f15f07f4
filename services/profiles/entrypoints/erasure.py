"""What an erasure does outside the database transaction: the answers kept in Redis for Idempotency-Key retries."""

from __future__ import annotations

import uuid

import structlog
from redis.exceptions import RedisError

from shared.http_protection import forget_stored_responses
from shared.service import Runtime

log = structlog.get_logger(__name__)


async def forget_cached_answers(runtime: Runtime, person_id: uuid.UUID) -> None:
    """Drop the kept answers that name the erased person (the POST creating them returned their whole profile).

    After the commit: the erasure stands whatever Redis does. Redis unavailable is logged, not an error: the records
    expire with the idempotency TTL (a day by default), and Redis holds only what may be lost."""
    try:
        forgotten = await forget_stored_responses(runtime.redis, runtime.settings.service_name, str(person_id))
    except RedisError as exc:
        log.warning("erasure_cached_answers_not_forgotten", person_id=str(person_id), error=f"{type(exc).__name__}")
        return
    log.info("erasure_cached_answers_forgotten", count=forgotten)
