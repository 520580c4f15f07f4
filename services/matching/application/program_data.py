"""Everything the domain needs about one program, loaded from the projection in a few queries."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.matching.adapters.orm import enrolments, matches, people, programs
from services.matching.application.errors import ConflictError
from services.matching.application.translate import participant_of, policy_of
from services.matching.domain.lifecycle import OPEN_STATES, MatchState
from services.matching.domain.model import MatchHistory, MentorCapacity, Participant, ProgramPolicy
from services.matching.domain.program_term import why_no_new_matches
from shared.db import chunks
from shared.events.models import ProfileUpdated, ProgramUpdated
from shared.events.values import DeclineReason, EnrollmentRole, EnrollmentStatus, MatchOrigin

MENTEE_ROLES = (EnrollmentRole.MENTEE.value, EnrollmentRole.BOTH.value)
MENTOR_ROLES = (EnrollmentRole.MENTOR.value, EnrollmentRole.BOTH.value)


async def load_program(session: AsyncSession, tenant: uuid.UUID, program_id: uuid.UUID) -> ProgramUpdated | None:
    row = (
        await session.execute(
            select(programs.c.snapshot).where(programs.c.tenant_id == tenant, programs.c.program_id == program_id)
        )
    ).first()
    return None if row is None else ProgramUpdated.model_validate(row.snapshot)


@dataclass(frozen=True)
class ProgramData:
    program: ProgramUpdated
    policy: ProgramPolicy
    mentees: dict[str, Participant]  # active enrolments as mentee (or both), people not erased
    mentors: dict[str, Participant]
    mentor_capacity: dict[str, int]
    open_pairs: frozenset[tuple[str, str]]  # pending_approval, proposed, active
    active_pairs: frozenset[tuple[str, str]]
    pending_pairs: frozenset[tuple[str, str]]  # round proposals waiting for approval (a subset of open_pairs)
    never_again: frozenset[tuple[str, str]]
    open_requests: Counter[str]  # open mentee requests per mentee

    @property
    def tenant(self) -> uuid.UUID:
        return self.program.tenant_id

    def capacities(self) -> dict[str, MentorCapacity]:
        """Free slots: capacity minus every open match or proposal (an open proposal reserves its slot)."""
        held = Counter(mentor for _, mentor in self.open_pairs)
        return {m: MentorCapacity(m, c, held[m]) for m, c in self.mentor_capacity.items()}

    def history(self) -> MatchHistory:
        """Open proposals count as held pairs: a round neither repeats them nor overfills a mentee."""
        return MatchHistory(ended_or_declined=self.never_again, active=self.open_pairs)

    def shortlist_history(self) -> MatchHistory:
        """For a short list only active matches hold a mentee's slots (an open request does not stop browsing)."""
        return MatchHistory(ended_or_declined=self.never_again, active=self.active_pairs)

    def as_sent(self) -> ProgramData:
        """The program counting only what was sent (proposed or active): how an approval sees it.

        Unsent round proposals reserve slots against requests and later rounds, but between rounds waiting for
        approval the first one approved takes the slots; the others' proposals are re-checked when approved.
        """
        return replace(self, open_pairs=self.open_pairs - self.pending_pairs, pending_pairs=frozenset())

    def require_new_matches_allowed(self, now: datetime) -> None:
        """409 when the program is closed, archived or past its last day (`ends_on`, a UTC date)."""
        why = why_no_new_matches(self.program.status, self.program.ends_on, now.astimezone(UTC).date())
        if why is not None:
            raise ConflictError(why)

    def held_by_mentee(self, mentee_id: str) -> int:
        return sum(1 for mentee, _ in self.open_pairs if mentee == mentee_id)


async def load_program_data(session: AsyncSession, tenant: uuid.UUID, program_id: uuid.UUID) -> ProgramData | None:
    program = await load_program(session, tenant, program_id)
    if program is None:
        return None
    enrolled = (
        await session.execute(
            select(enrolments.c.person_id, enrolments.c.role, enrolments.c.capacity, people.c.snapshot)
            .join(people, (people.c.person_id == enrolments.c.person_id) & (people.c.tenant_id == tenant))
            .where(
                enrolments.c.tenant_id == tenant,
                enrolments.c.program_id == program_id,
                enrolments.c.status == EnrollmentStatus.ACTIVE.value,
                people.c.erased.is_(False),
                people.c.snapshot.is_not(None),
            )
            .order_by(enrolments.c.person_id)
        )
    ).all()
    mentees: dict[str, Participant] = {}
    mentors: dict[str, Participant] = {}
    capacity: dict[str, int] = {}
    for row in enrolled:
        participant = participant_of(ProfileUpdated.model_validate(row.snapshot), program_id)
        if row.role in MENTEE_ROLES:
            mentees[participant.person_id] = participant
        if row.role in MENTOR_ROLES:
            mentors[participant.person_id] = participant
            # A mentor enrolment without a stated capacity takes the program's default.
            capacity[participant.person_id] = row.capacity or program.default_mentor_capacity
    pairs = (
        await session.execute(
            select(
                matches.c.mentee_person_id,
                matches.c.mentor_person_id,
                matches.c.state,
                matches.c.origin,
                matches.c.decline_reason,
                matches.c.proposed_at,
            ).where(matches.c.tenant_id == tenant, matches.c.program_id == program_id)
        )
    ).all()
    open_pairs: set[tuple[str, str]] = set()
    active: set[tuple[str, str]] = set()
    pending: set[tuple[str, str]] = set()
    never: set[tuple[str, str]] = set()
    requests: Counter[str] = Counter()
    for p in pairs:
        pair = (str(p.mentee_person_id), str(p.mentor_person_id))
        state = MatchState(p.state)
        if state in OPEN_STATES:
            open_pairs.add(pair)
            if state is MatchState.ACTIVE:
                active.add(pair)
            elif state is MatchState.PENDING_APPROVAL:
                pending.add(pair)
            elif p.origin == "mentee_request":
                requests[pair[0]] += 1
        elif state is MatchState.ENDED or (
            # A round proposal dropped before it was sent (by the coordinator or the approval's re-check) was never
            # seen by the pair: not a decline.
            state is MatchState.DECLINED
            and p.decline_reason != DeclineReason.REJECTED_BY_COORDINATOR.value
            and (p.proposed_at is not None or p.origin != MatchOrigin.COHORT_ROUND.value)
        ):
            never.add(pair)
    policy = policy_of(program)
    if policy.mentors_per_mentee > 1:
        mentees = _with_needs_met_by_current_mentors(mentees, mentors, active)
    return ProgramData(
        program=program,
        policy=policy,
        mentees=mentees,
        mentors=mentors,
        mentor_capacity=capacity,
        open_pairs=frozenset(open_pairs),
        active_pairs=frozenset(active),
        pending_pairs=frozenset(pending),
        never_again=frozenset(never),
        open_requests=requests,
    )


def _with_needs_met_by_current_mentors(
    mentees: dict[str, Participant], mentors: dict[str, Participant], active: Iterable[tuple[str, str]]
) -> dict[str, Participant]:
    """In a mentor network, a mentee's next mentor is for what their current ones do not offer: each mentee carries
    the needs their active mentors cover (a mentor no longer actively enrolled is not counted)."""
    offered: dict[str, set[str]] = {}
    for mentee_id, mentor_id in active:
        mentor = mentors.get(mentor_id)
        if mentor is not None:
            offered.setdefault(mentee_id, set()).update(mentor.offers)
    changed = {
        mentee_id: replace(
            mentees[mentee_id], needs_met_by_current_mentors=frozenset(covered & mentees[mentee_id].needs.keys())
        )
        for mentee_id, covered in offered.items()
        if mentee_id in mentees
    }
    return {**mentees, **changed}


async def lock_enrolments(
    session: AsyncSession, tenant: uuid.UUID, program_id: uuid.UUID, person_ids: Iterable[uuid.UUID]
) -> None:
    """Lock the enrolment rows of the people a use case is about to pair, mentors and mentees alike (ascending
    person id, so two callers never wait on each other in a cycle).

    Every use case that takes a slot locks both people first and reads the open matches after, so two concurrent
    requests, approvals or acceptances cannot both see the same last free slot: a mentor's capacity, or a
    mentee's open requests and mentors per mentee. The second one waits for the first to commit and then counts
    its match (READ COMMITTED: each statement sees what committed before it started).
    """
    # In chunks (a cohort round's approval names both people of every pair); ascending across the chunks too.
    for wanted in chunks(sorted(set(person_ids))):
        await session.execute(
            select(enrolments.c.enrollment_id)
            .where(
                enrolments.c.tenant_id == tenant,
                enrolments.c.program_id == program_id,
                enrolments.c.person_id.in_(wanted),
            )
            .order_by(enrolments.c.person_id, enrolments.c.enrollment_id)
            .with_for_update()
        )


def row_dict(row: Any) -> dict[str, Any]:
    return dict(row._mapping)
