"""Mentee chooses: the explained short list with exposure spreading, and a mentee's request to a mentor."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.matching.adapters.orm import shortlist_exposure
from services.matching.application.errors import ConflictError, NotFoundError
from services.matching.application.matches import NewProposal, insert_proposal
from services.matching.application.program_data import ProgramData
from services.matching.domain.lifecycle import MatchState
from services.matching.domain.rules import HIDDEN_FROM_MENTEE, ExclusionReason, check_pair, describe_exclusions
from services.matching.domain.scoring import score_pair
from services.matching.domain.shortlist import MentorPool, ShortlistEntry
from shared.events.values import MatchOrigin


@dataclass(frozen=True)
class MenteeShortlist:
    mentee_id: str
    entries: tuple[ShortlistEntry, ...]
    feasible_mentors: int
    passed_over_for_exposure: int
    exclusions: Mapping[ExclusionReason, int] = field(default_factory=dict)  # mentors excluded by each hard rule

    @property
    def detail(self) -> str | None:
        """Why no mentor passes the hard rules, in a round report's words, when none does."""
        return describe_exclusions(self.exclusions) if self.feasible_mentors == 0 else None

    def for_mentee(self) -> MenteeShortlist:
        """The list as its mentee reads it: without the exclusions that are other people's own (HIDDEN_FROM_MENTEE)."""
        return replace(self, exclusions={r: n for r, n in self.exclusions.items() if r not in HIDDEN_FROM_MENTEE})


async def _exposure(session: AsyncSession, data: ProgramData, mentee_id: uuid.UUID) -> dict[str, int]:
    rows = await session.execute(
        select(shortlist_exposure.c.mentor_person_id, func.count())
        .where(
            shortlist_exposure.c.tenant_id == data.tenant,
            shortlist_exposure.c.program_id == data.program.program_id,
            shortlist_exposure.c.mentee_person_id != mentee_id,
        )
        .group_by(shortlist_exposure.c.mentor_person_id)
    )
    return {str(mentor): int(count) for mentor, count in rows.all()}


async def shortlist(session: AsyncSession, data: ProgramData, mentee_id: uuid.UUID, now: datetime) -> MenteeShortlist:
    """The program's 3–4 best mentors for this mentee that hard rules allow, spreading exposure; records what it showed.

    Mentors the mentee already has an open request or proposal with are left out (they are in the mentee's matches).
    """
    mentee = data.mentees.get(str(mentee_id))
    if mentee is None:
        raise NotFoundError(f"no active mentee {mentee_id} in this program")
    exposure = await _exposure(session, data, mentee_id)
    pending = {m for (me, m) in data.open_pairs - data.active_pairs if me == mentee.person_id}
    size = data.policy.proposals_per_mentee

    def build() -> MenteeShortlist:
        pool = MentorPool(list(data.mentors.values()), data.capacities(), data.policy)
        found = pool.shortlist(mentee, exposure, data.shortlist_history(), size=size + len(pending))
        kept = [e for e in found.entries if e.mentor_id not in pending][:size]
        entries = tuple(ShortlistEntry(rank, e.mentor_id, e.score) for rank, e in enumerate(kept, start=1))
        return MenteeShortlist(
            mentee.person_id, entries, found.feasible_mentors, found.passed_over_for_exposure, found.exclusions
        )

    # Encoding and scoring a large pool is CPU work: keep it off the event loop.
    result = await asyncio.to_thread(build) if len(data.mentors) > 200 else build()
    program_id = data.program.program_id
    await session.execute(
        delete(shortlist_exposure).where(
            shortlist_exposure.c.program_id == program_id, shortlist_exposure.c.mentee_person_id == mentee_id
        )
    )
    if result.entries:
        await session.execute(
            insert(shortlist_exposure),
            [
                {
                    "program_id": program_id,
                    "mentee_person_id": mentee_id,
                    "mentor_person_id": uuid.UUID(e.mentor_id),
                    "tenant_id": data.tenant,
                    "shown_at": now,
                }
                for e in result.entries
            ],
        )
    return result


async def request_mentor(
    session: AsyncSession, data: ProgramData, mentee_id: uuid.UUID, mentor_id: uuid.UUID, now: datetime
) -> uuid.UUID:
    """A mentee asks a mentor: a proposal the mentee has already accepted, open for the program's window."""
    mentee = data.mentees.get(str(mentee_id))
    if mentee is None:
        raise NotFoundError(f"no active mentee {mentee_id} in this program")
    mentor = data.mentors.get(str(mentor_id))
    if mentor is None:
        raise ConflictError(f"{mentor_id} is not an active mentor of this program")
    policy = data.program.matching_policy
    if data.open_requests[mentee.person_id] >= policy.max_open_requests_per_mentee:
        raise ConflictError(
            f"at most {policy.max_open_requests_per_mentee} open requests per mentee; withdraw one or wait"
        )
    if (mentee.person_id, mentor.person_id) in data.open_pairs:
        raise ConflictError("this mentee and mentor already have an open proposal or match")
    active = sum(1 for me, _ in data.active_pairs if me == mentee.person_id)
    broken = check_pair(
        mentee,
        mentor,
        data.policy,
        data.shortlist_history(),
        capacity=data.capacities()[mentor.person_id],
        mentee_active_mentors=active,
    )
    if broken:
        raise ConflictError("this pair breaks the program's rules: " + ", ".join(r.value for r in broken))
    row = await insert_proposal(
        session,
        data.tenant,
        NewProposal(
            program_id=data.program.program_id,
            mentee_id=mentee_id,
            mentor_id=mentor_id,
            score=score_pair(mentee, mentor, data.policy),
            origin=MatchOrigin.MENTEE_REQUEST,
        ),
        now,
        state=MatchState.PROPOSED,
        window=timedelta(days=policy.request_window_days),
        mentee_accepted=True,
    )
    match_id: uuid.UUID = row.match_id
    return match_id


async def coordinator_match(
    session: AsyncSession, data: ProgramData, mentee_id: uuid.UUID, mentor_id: uuid.UUID, now: datetime
) -> uuid.UUID:
    """A coordinator pairs two people by hand: a proposal both still accept, under the same hard rules."""
    mentee = data.mentees.get(str(mentee_id))
    mentor = data.mentors.get(str(mentor_id))
    if mentee is None or mentor is None:
        raise ConflictError("both people must be active in this program, as mentee and as mentor")
    broken = check_pair(
        mentee,
        mentor,
        data.policy,
        data.history(),
        capacity=data.capacities()[mentor.person_id],
        mentee_active_mentors=data.held_by_mentee(mentee.person_id),
    )
    if broken:
        raise ConflictError("this pair breaks the program's rules: " + ", ".join(r.value for r in broken))
    row = await insert_proposal(
        session,
        data.tenant,
        NewProposal(
            program_id=data.program.program_id,
            mentee_id=mentee_id,
            mentor_id=mentor_id,
            score=score_pair(mentee, mentor, data.policy),
            origin=MatchOrigin.COORDINATOR,
        ),
        now,
        state=MatchState.PROPOSED,
        window=timedelta(days=data.program.matching_policy.request_window_days),
    )
    match_id: uuid.UUID = row.match_id
    return match_id
