"""Applying state-carrying events (full snapshot + version) to a service's own projection tables."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Mapping
from typing import Any, Protocol

from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.messaging.consumer import run_after_commit


class ForgetPerson(Protocol):
    """Drops what a service keeps outside its database about a person erased in a tenant (the bootstrap wires
    shared.service.Runtime.forget_answers_naming: the answers its API keeps in Redis for Idempotency-Key retries)."""

    def __call__(self, person_id: uuid.UUID, tenant_id: uuid.UUID) -> Awaitable[object]: ...


async def apply_snapshot(
    session: AsyncSession, table: Table, key: Mapping[str, Any], values: Mapping[str, Any]
) -> bool:
    """Upsert a snapshot row keyed by `key`; `values` must hold `version` and `tenant_id`.

    Newest version wins, so redelivered or out-of-order snapshots change nothing, and a snapshot of another tenant
    never overwrites a row (ids are global, tenancy is not to be trusted to them). Returns whether the row changed.
    """
    stmt = insert(table).values(**key, **values)
    applied = await session.execute(
        stmt.on_conflict_do_update(
            index_elements=list(key),
            set_=dict(values),
            where=(table.c.version < stmt.excluded.version) & (table.c.tenant_id == stmt.excluded.tenant_id),
        ).returning(*(table.c[name] for name in key))
    )
    return applied.first() is not None


def forget_after_commit(
    session: AsyncSession, forget: ForgetPerson | None, tenant_id: uuid.UUID, person_id: uuid.UUID
) -> None:
    """Have an erasure handler's `forget(person_id, tenant_id)` (the erasure's tenant only: another tenant's records
    naming the same id stay) run once the consumer's transaction commits (run_after_commit):
    no Redis scan while the batch holds its row locks, none for a batch rolled back, and its failure logged, never
    failing the erasure. `forget` None (a handler built without Redis) forgets nothing."""
    if forget is not None:
        run_after_commit(session, functools.partial(forget, person_id, tenant_id))


async def is_erased(session: AsyncSession, people: Table, tenant_id: uuid.UUID, person_id: uuid.UUID) -> bool:
    """Whether the service's projection of people (a table with tenant_id, person_id and erased) holds the person as
    erased in this tenant."""
    found = await session.scalar(
        select(people.c.erased).where(people.c.tenant_id == tenant_id, people.c.person_id == person_id)
    )
    return found is True


async def forget_if_erased(
    session: AsyncSession, forget: ForgetPerson | None, people: Table, tenant_id: uuid.UUID, person_id: uuid.UUID
) -> None:
    """After a ProfileErased handler: `forget_after_commit` when the person is now erased in this tenant, whether this
    delivery applied the erasure or one applied it before. A redelivered erasure forgets again, since the forgetting
    after the first may have failed (Redis down: logged, not retried) or missed an answer a request still running then
    kept; the second costs a SCAN. An erasure of another tenant's person (not applied) forgets nothing."""
    if await is_erased(session, people, tenant_id, person_id):
        forget_after_commit(session, forget, tenant_id, person_id)
