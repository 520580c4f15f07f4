"""Reading a participant's check-in reminders (GET /v1/me/reminders), each with where its check-in stands now."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.scheduling.adapters.orm import check_ins, reminders


async def reminders_of_person(
    session: AsyncSession, tenant_id: uuid.UUID, person_id: uuid.UUID, limit: int, offset: int = 0
) -> list[Row[Any]]:
    """The person's reminders, newest first, each with ``check_in_state``, its check-in's state now. A reminder stays
    listed after its check-in is cancelled (the match ended, a new plan) or settled; without the state a client
    would still remind of a check-in that will never come due."""
    query = (
        select(reminders, check_ins.c.state.label("check_in_state"))
        .join(check_ins, check_ins.c.check_in_id == reminders.c.check_in_id)
        .where(
            reminders.c.tenant_id == tenant_id,
            (reminders.c.mentee_person_id == person_id) | (reminders.c.mentor_person_id == person_id),
        )
        .order_by(reminders.c.remind_at.desc(), reminders.c.check_in_id)
        .limit(limit)
        .offset(offset)
    )
    return list((await session.execute(query)).all())
