"""A program's pool as matching sees it: who it has learned from the profiles events, and how recently.

Matching learns participants asynchronously (ProfileUpdated and EnrollmentChanged), so a coordinator about to run a
cohort round reads this to tell whether everyone has arrived: an active enrolment whose profile has not arrived yet
is in no short list or round until it does.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.matching.adapters.orm import enrolments, people, programs
from services.matching.application.program_data import MENTEE_ROLES, MENTOR_ROLES, ProgramData
from shared.events.values import EnrollmentStatus


@dataclass(frozen=True, slots=True)
class MenteesInPool:
    matchable: int  # active enrolment and profile known: what a short list or round takes
    without_profile: int  # active enrolment, profile not received (yet)
    unmatched: int  # matchable, holding no match, proposal or round proposal awaiting approval


@dataclass(frozen=True, slots=True)
class MentorsInPool:
    matchable: int
    without_profile: int
    capacity_total: int  # mentees the matchable mentors take at once
    capacity_free: int  # of which not held by a match, proposal or round proposal


@dataclass(frozen=True, slots=True)
class ProgramPool:
    mentees: MenteesInPool
    mentors: MentorsInPool
    newest_event_at: datetime | None  # of the program, its enrolments and their people's profiles


async def program_pool(session: AsyncSession, data: ProgramData) -> ProgramPool:
    """The pool of the program `data` was loaded for (the same view a short list or a round has)."""
    program_id = data.program.program_id
    active = enrolments.c.status == EnrollmentStatus.ACTIVE.value
    no_profile = active & (people.c.snapshot.is_(None))  # never received, or erased
    row = (
        await session.execute(
            select(
                func.count().filter(no_profile & enrolments.c.role.in_(MENTEE_ROLES)),
                func.count().filter(no_profile & enrolments.c.role.in_(MENTOR_ROLES)),
                func.max(func.greatest(enrolments.c.event_time, people.c.event_time)),
            )
            .select_from(enrolments)
            .outerjoin(
                people, (people.c.person_id == enrolments.c.person_id) & (people.c.tenant_id == enrolments.c.tenant_id)
            )
            .where(enrolments.c.tenant_id == data.tenant, enrolments.c.program_id == program_id)
        )
    ).one()
    mentees_without, mentors_without, newest_person = row
    program_time = (
        await session.execute(
            select(programs.c.event_time).where(
                programs.c.tenant_id == data.tenant, programs.c.program_id == program_id
            )
        )
    ).scalar_one_or_none()
    held_by_mentee = Counter(mentee for mentee, _ in data.open_pairs)
    free = data.capacities()
    return ProgramPool(
        mentees=MenteesInPool(
            matchable=len(data.mentees),
            without_profile=int(mentees_without),
            unmatched=sum(1 for mentee in data.mentees if held_by_mentee[mentee] == 0),
        ),
        mentors=MentorsInPool(
            matchable=len(data.mentors),
            without_profile=int(mentors_without),
            capacity_total=sum(data.mentor_capacity.values()),
            capacity_free=sum(max(0, free[mentor].free_slots) for mentor in data.mentors),
        ),
        newest_event_at=_newest(newest_person, program_time),
    )


def _newest(*times: datetime | None) -> datetime | None:
    known = [t for t in times if t is not None]
    return max(known) if known else None


__all__ = ["MenteesInPool", "MentorsInPool", "ProgramPool", "program_pool"]
