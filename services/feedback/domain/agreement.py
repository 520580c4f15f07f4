"""Expectations agreement: each party answers independently, then both see where they converge and diverge.

Blind submission: a party's answers stay hidden from the partner until both have submitted, so neither can
anchor on the other's answers. After both submitted the answers are locked and the pair can record an agreed
plan whose goals later receive progress updates.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from datetime import datetime
from enum import Enum, StrEnum
from typing import Annotated, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

SHORT_TEXT_MAX = 500
GOAL_TEXT_MAX = 200
MAX_GOALS = 5

Scale = Annotated[int, Field(ge=1, le=5, description="1 = not at all / low, 5 = very much / high")]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=SHORT_TEXT_MAX)]
GoalText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=GOAL_TEXT_MAX)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Topic(StrEnum):
    ASPIRATIONS = "aspirations"
    COMMUNICATION = "communication"
    WELL_BEING = "well_being"
    WORK_FEEDBACK = "work_feedback"
    CONFLICT_RESOLUTION = "conflict_resolution"
    CAREER_DEVELOPMENT = "career_development"
    GOALS = "goals"


class Channel(StrEnum):
    IN_PERSON = "in_person"
    VIDEO = "video"
    PHONE = "phone"
    CHAT = "chat"
    EMAIL = "email"


class MeetingFrequency(StrEnum):
    WEEKLY = "weekly"
    FORTNIGHTLY = "fortnightly"
    MONTHLY = "monthly"
    AS_NEEDED = "as_needed"


class ResponseTime(StrEnum):
    SAME_DAY = "same_day"
    WITHIN_TWO_DAYS = "within_two_days"
    WITHIN_A_WEEK = "within_a_week"


class FeedbackStyle(StrEnum):
    DIRECT = "direct"
    GENTLE = "gentle"
    WRITTEN_COMMENTS = "written_comments"
    DISCUSSION = "discussion"


class ConflictApproach(StrEnum):
    RAISE_IMMEDIATELY = "raise_immediately"
    RAISE_AT_NEXT_MEETING = "raise_at_next_meeting"
    ASK_COORDINATOR = "ask_coordinator"


class Aspirations(_Frozen):
    hopes: ShortText = ""
    commitment: Scale = Field(description="Time and energy the party means to invest.")


class Communication(_Frozen):
    channel: Channel
    frequency: MeetingFrequency
    response_time: ResponseTime
    notes: ShortText = ""


class WellBeing(_Frozen):
    openness_to_personal_topics: Scale
    boundaries: ShortText = ""


class WorkFeedback(_Frozen):
    wants_feedback_on_work: Scale
    style: FeedbackStyle
    notes: ShortText = ""


class ConflictResolution(_Frozen):
    approach: ConflictApproach
    comfort_raising_issues: Scale
    notes: ShortText = ""


class CareerDevelopment(_Frozen):
    importance: Scale
    notes: ShortText = ""


class Goals(_Frozen):
    goals: tuple[GoalText, ...] = Field(default=(), max_length=MAX_GOALS)


class AgreementAnswers(_Frozen):
    """One party's answers; field names are the topics, so the comparison can walk them generically."""

    aspirations: Aspirations
    communication: Communication
    well_being: WellBeing
    work_feedback: WorkFeedback
    conflict_resolution: ConflictResolution
    career_development: CareerDevelopment
    goals: Goals


# The comparison walks the topics by name: a topic added to Topic must also be a field of the answers.
if set(AgreementAnswers.model_fields) != {topic.value for topic in Topic}:
    raise RuntimeError("AgreementAnswers fields and Topic values differ")


# ---------------------------------------------------------------------------------------------------------------
# Blind submission and visibility


class AgreementError(Exception):
    """An action that the agreement's state does not allow."""


class ExpectationsAgreement(_Frozen):
    """The agreement of one match: the two parties and what each has submitted so far."""

    match_id: UUID
    party_ids: tuple[UUID, UUID]
    answers: dict[UUID, AgreementAnswers] = Field(default_factory=dict)
    submitted_at: dict[UUID, datetime] = Field(default_factory=dict)
    plan: AgreedPlan | None = None

    @model_validator(mode="after")
    def _parties_are_two_people(self) -> Self:
        if self.party_ids[0] == self.party_ids[1]:
            raise ValueError("an agreement needs two different parties")
        return self

    @property
    def both_submitted(self) -> bool:
        return all(party in self.answers for party in self.party_ids)

    def partner_of(self, party_id: UUID) -> UUID:
        self._require_party(party_id)
        first, second = self.party_ids
        return second if party_id == first else first

    def _require_party(self, party_id: UUID) -> None:
        if party_id not in self.party_ids:
            raise AgreementError("not a party of this match")


def submit_answers(
    agreement: ExpectationsAgreement, party_id: UUID, answers: AgreementAnswers, now: datetime
) -> ExpectationsAgreement:
    """Record (or, while the partner has not submitted yet, replace) a party's answers.

    Locked once both have submitted: each has then seen the other's answers, and editing afterwards would let a
    party rewrite what the comparison was based on.
    """
    agreement._require_party(party_id)
    if agreement.both_submitted:
        raise AgreementError("answers are locked once both parties have submitted")
    return agreement.model_copy(
        update={
            "answers": {**agreement.answers, party_id: answers},
            "submitted_at": {**agreement.submitted_at, party_id: now},
        }
    )


class AgreementView(_Frozen):
    """What one party sees: always their own answers, the partner's only once both have submitted."""

    own: AgreementAnswers | None
    partner: AgreementAnswers | None
    partner_has_submitted: bool
    comparison: AgreementComparison | None


def view_for(agreement: ExpectationsAgreement, viewer_id: UUID) -> AgreementView:
    partner_id = agreement.partner_of(viewer_id)
    revealed = agreement.both_submitted
    return AgreementView(
        own=agreement.answers.get(viewer_id),
        partner=agreement.answers[partner_id] if revealed else None,
        # Whether the partner is done is not their answers, and tells the viewer to wait rather than nag.
        partner_has_submitted=partner_id in agreement.answers,
        comparison=compare(agreement.answers[viewer_id], agreement.answers[partner_id]) if revealed else None,
    )


# ---------------------------------------------------------------------------------------------------------------
# Comparison


class Alignment(StrEnum):
    CONVERGE = "converge"
    DIVERGE = "diverge"
    TO_DISCUSS = "to_discuss"  # free text: shown side by side, no machine verdict


class ItemComparison(_Frozen):
    topic: Topic
    item: str
    alignment: Alignment
    first: str | int
    second: str | int
    gap: int | None = None  # for 1-5 scales


class GoalComparison(_Frozen):
    shared: tuple[tuple[str, str], ...]  # (first party's wording, second party's wording)
    only_first: tuple[str, ...]
    only_second: tuple[str, ...]

    @property
    def alignment(self) -> Alignment:
        return Alignment.DIVERGE if self.only_first or self.only_second else Alignment.CONVERGE


class TopicComparison(_Frozen):
    topic: Topic
    items: tuple[ItemComparison, ...]
    goals: GoalComparison | None = None

    @property
    def alignment(self) -> Alignment:
        verdicts = {item.alignment for item in self.items} - {Alignment.TO_DISCUSS}
        if self.goals is not None:
            verdicts.add(self.goals.alignment)
        if Alignment.DIVERGE in verdicts:
            return Alignment.DIVERGE
        return Alignment.CONVERGE if verdicts else Alignment.TO_DISCUSS


class AgreementComparison(_Frozen):
    topics: tuple[TopicComparison, ...]

    def topic(self, topic: Topic) -> TopicComparison:
        return next(entry for entry in self.topics if entry.topic == topic)

    @property
    def divergent_topics(self) -> tuple[Topic, ...]:
        return tuple(entry.topic for entry in self.topics if entry.alignment == Alignment.DIVERGE)


class ComparisonPolicy(_Frozen):
    scale_gap_threshold: int = Field(default=2, ge=1, le=4, description="A scale gap at or above this diverges.")
    goal_similarity: float = Field(default=0.6, gt=0, le=1, description="Text similarity at which goals match.")


def compare(
    first: AgreementAnswers, second: AgreementAnswers, policy: ComparisonPolicy | None = None
) -> AgreementComparison:
    """Per topic: equal/different choices, scale gaps against the threshold, free text side by side, goal overlap."""
    policy = policy or ComparisonPolicy()
    topics: list[TopicComparison] = []
    for topic in Topic:
        first_part: BaseModel = getattr(first, topic.value)
        second_part: BaseModel = getattr(second, topic.value)
        if topic is Topic.GOALS:
            assert isinstance(first_part, Goals)
            assert isinstance(second_part, Goals)
            goals = _compare_goals(first_part.goals, second_part.goals, policy.goal_similarity)
            topics.append(TopicComparison(topic=topic, items=(), goals=goals))
            continue
        items = tuple(
            _compare_item(topic, name, getattr(first_part, name), getattr(second_part, name), policy)
            for name in type(first_part).model_fields
        )
        topics.append(TopicComparison(topic=topic, items=items))
    return AgreementComparison(topics=tuple(topics))


def _compare_item(topic: Topic, name: str, first: object, second: object, policy: ComparisonPolicy) -> ItemComparison:
    if isinstance(first, Enum) and isinstance(second, Enum):
        alignment = Alignment.CONVERGE if first == second else Alignment.DIVERGE
        return ItemComparison(topic=topic, item=name, alignment=alignment, first=first.value, second=second.value)
    if isinstance(first, int) and isinstance(second, int):
        gap = abs(first - second)
        alignment = Alignment.DIVERGE if gap >= policy.scale_gap_threshold else Alignment.CONVERGE
        return ItemComparison(topic=topic, item=name, alignment=alignment, first=first, second=second, gap=gap)
    assert isinstance(first, str)
    assert isinstance(second, str)
    return ItemComparison(topic=topic, item=name, alignment=Alignment.TO_DISCUSS, first=first, second=second)


_NON_WORD = re.compile(r"[^\w]+")


def _normalise_goal(text: str) -> str:
    return " ".join(_NON_WORD.sub(" ", text.casefold()).split())


def _compare_goals(first: tuple[str, ...], second: tuple[str, ...], threshold: float) -> GoalComparison:
    """Greedy one-to-one pairing of the most similar goals (at most 5 a side, so quadratic is nothing).

    difflib's ratio is a good-enough fuzzy match for short goal phrases; a semantic model would be overkill here.
    """
    scored = sorted(
        (
            (difflib.SequenceMatcher(None, _normalise_goal(a), _normalise_goal(b)).ratio(), i, j)
            for i, a in enumerate(first)
            for j, b in enumerate(second)
        ),
        reverse=True,
    )
    used_first: set[int] = set()
    used_second: set[int] = set()
    shared: list[tuple[int, int]] = []
    for score, i, j in scored:
        if score < threshold:
            break
        if i in used_first or j in used_second:
            continue
        used_first.add(i)
        used_second.add(j)
        shared.append((i, j))
    shared.sort()
    return GoalComparison(
        shared=tuple((first[i], second[j]) for i, j in shared),
        only_first=tuple(goal for i, goal in enumerate(first) if i not in used_first),
        only_second=tuple(goal for j, goal in enumerate(second) if j not in used_second),
    )


# ---------------------------------------------------------------------------------------------------------------
# Agreed plan and goal progress


class ProgressUpdate(_Frozen):
    percent: int = Field(ge=0, le=100)
    note: ShortText = ""
    recorded_at: datetime
    recorded_by: UUID


class PlanGoal(_Frozen):
    goal_id: UUID
    text: GoalText
    updates: tuple[ProgressUpdate, ...] = ()

    @property
    def progress(self) -> int:
        return self.updates[-1].percent if self.updates else 0


class AgreedPlan(_Frozen):
    goals: tuple[PlanGoal, ...] = Field(max_length=MAX_GOALS * 2)
    # The pair's own words per topic (e.g. "video call every other Tuesday, reply within two days").
    agreements: dict[Topic, ShortText] = Field(default_factory=dict)
    recorded_at: datetime
    recorded_by: UUID


def record_plan(agreement: ExpectationsAgreement, plan: AgreedPlan) -> ExpectationsAgreement:
    agreement._require_party(plan.recorded_by)
    if not agreement.both_submitted:
        raise AgreementError("the plan is agreed after both parties have submitted their answers")
    goal_ids = [goal.goal_id for goal in plan.goals]
    if len(set(goal_ids)) != len(goal_ids):
        raise AgreementError("goal ids must be unique")
    return agreement.model_copy(update={"plan": plan})


def update_goal_progress(
    agreement: ExpectationsAgreement, goal_id: UUID, update: ProgressUpdate
) -> ExpectationsAgreement:
    agreement._require_party(update.recorded_by)
    if agreement.plan is None:
        raise AgreementError("no agreed plan yet")
    if not any(goal.goal_id == goal_id for goal in agreement.plan.goals):
        raise AgreementError("unknown goal")
    goals = tuple(
        goal.model_copy(update={"updates": (*goal.updates, update)}) if goal.goal_id == goal_id else goal
        for goal in agreement.plan.goals
    )
    return agreement.model_copy(update={"plan": agreement.plan.model_copy(update={"goals": goals})})


ExpectationsAgreement.model_rebuild()
AgreementView.model_rebuild()


def _blank_text(part: BaseModel) -> BaseModel:
    """The same answers with every free-text field emptied (choices and scales are not personal text)."""
    if isinstance(part, Goals):
        return part.model_copy(update={"goals": ()})
    blanked = {
        name: ""
        for name in type(part).model_fields
        if isinstance(getattr(part, name), str) and not isinstance(getattr(part, name), Enum)
    }
    return part.model_copy(update=blanked)


def erase_text_of(agreement: ExpectationsAgreement, person_id: UUID) -> ExpectationsAgreement:
    """ProfileErased: drop the person's free text (answers, progress notes); choices and scales stay.

    The answers are blanked rather than removed so the partner's comparison and the lock stay as they were.
    """
    if person_id not in agreement.party_ids:
        return agreement
    answers = dict(agreement.answers)
    if person_id in answers:
        own = answers[person_id]
        answers[person_id] = own.model_copy(
            update={topic.value: _blank_text(getattr(own, topic.value)) for topic in Topic}
        )
    plan = agreement.plan
    if plan is not None:
        plan = _with_updates(
            plan, lambda update: update.model_copy(update={"note": ""}) if update.recorded_by == person_id else update
        )
        if plan.recorded_by == person_id:
            # The pair agreed on the plan, but the words are the recorder's: their wording goes, the goals' ids and
            # progress (the partner's included) stay so the partner's record of the relationship keeps its shape.
            goals = tuple(goal.model_copy(update={"text": ERASED_GOAL_TEXT}) for goal in plan.goals)
            plan = plan.model_copy(update={"goals": goals, "agreements": dict.fromkeys(plan.agreements, "")})
    return agreement.model_copy(update={"answers": answers, "plan": plan})


def _with_updates(plan: AgreedPlan, change: Callable[[ProgressUpdate], ProgressUpdate]) -> AgreedPlan:
    """The plan with `change` applied to every progress update of every goal."""
    goals = tuple(
        goal.model_copy(update={"updates": tuple(change(update) for update in goal.updates)}) for goal in plan.goals
    )
    return plan.model_copy(update={"goals": goals})


ERASED_GOAL_TEXT = "(erased)"  # a goal's text cannot be empty


def forget_party(agreement: ExpectationsAgreement, person_id: UUID, replacement_id: UUID) -> ExpectationsAgreement:
    """ProfileErased: the person's free text goes (:func:`erase_text_of`) and their id becomes `replacement_id`
    wherever the agreement names them (party, answers, submission time, plan and progress recorder), so nothing in
    it leads back to them while the partner's view (their own answers, the comparison, the lock) keeps its shape."""
    if person_id not in agreement.party_ids:
        return agreement
    erased = erase_text_of(agreement, person_id)

    def renamed(party_id: UUID) -> UUID:
        return replacement_id if party_id == person_id else party_id

    plan = erased.plan
    if plan is not None:
        plan = _with_updates(
            plan, lambda update: update.model_copy(update={"recorded_by": renamed(update.recorded_by)})
        )
        plan = plan.model_copy(update={"recorded_by": renamed(plan.recorded_by)})
    first, second = erased.party_ids
    return erased.model_copy(
        update={
            "party_ids": (renamed(first), renamed(second)),
            "answers": {renamed(party): answers for party, answers in erased.answers.items()},
            "submitted_at": {renamed(party): at for party, at in erased.submitted_at.items()},
            "plan": plan,
        }
    )
