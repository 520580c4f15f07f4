"""Who may see which feedback, and how reports keep small groups hidden.

Two families of rules, all pure functions:

1. Individual feedback: the respondent sees their own pulse; the match partner never sees the other's ratings or
   notes; a coordinator of the program sees ratings, and notes only when the respondent flagged a concern.
2. Reports: a cell describing fewer people than the program's minimum group size is hidden (primary suppression),
   and further cells are hidden so the hidden ones cannot be recovered by subtraction from a total or from an
   overlapping breakdown (complementary, or secondary, suppression).

The suppression is the classic cell-suppression heuristic used by statistical offices, written here because the
mature tools (tau-argus, sdcTable) are not Python libraries; it is iterated to a fixed point across every additive
relation of the breakdown hierarchy. :func:`cells_recoverable_by_subtraction` is the matching audit: what an
attacker learns by repeatedly solving relations with a single unknown.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from uuid import UUID, uuid5

from services.feedback.domain.pulse import Answer, Pulse

DEFAULT_MIN_GROUP_SIZE = 5

# ---------------------------------------------------------------------------------------------------------------
# Individual feedback


@dataclass(frozen=True)
class Viewer:
    person_id: UUID
    coordinator_of: frozenset[UUID] = field(default_factory=frozenset)  # program ids


@dataclass(frozen=True)
class PulseView:
    scores: Mapping[str, int | bool]
    notes: Mapping[str, str]  # empty unless the viewer may read the respondent's text


def split_answers(answers: Mapping[str, Answer]) -> tuple[dict[str, int | bool], dict[str, str]]:
    scores = {key: value for key, value in answers.items() if not isinstance(value, str)}
    notes = {key: value for key, value in answers.items() if isinstance(value, str)}
    return scores, notes


def pulse_view(pulse: Pulse, viewer: Viewer, match_party_ids: tuple[UUID, UUID]) -> PulseView | None:
    """What ``viewer`` may see of a submitted pulse; ``None`` means nothing, not even that it exists."""
    if pulse.answers is None:
        return None
    scores, notes = split_answers(pulse.answers)
    if viewer.person_id == pulse.respondent_id:
        return PulseView(scores=scores, notes=notes)
    if viewer.person_id in match_party_ids:
        # The partner: even when they also coordinate the program, they never read the other's feedback.
        return None
    if pulse.program_id in viewer.coordinator_of:
        return PulseView(scores=scores, notes=notes if pulse.concern_flagged else {})
    return None


_ERASURE_NAMESPACE = UUID("6f1d0a3e-4b7c-5e2a-9c81-3d5f7a9b2e40")


def erasure_key(tenant_id: UUID, person_id: UUID) -> UUID:
    """The key of an erased person's tombstone: a one-way digest (UUIDv5, SHA-1) of their id, not the id.

    The tombstone says that this person was erased, so a late event naming them projects nothing personal again; it
    can be found from the person id, but the person id cannot be read out of it. It also keeps the random id that
    replaced theirs in the rows the erasure kept (since migration 0008, for their late matches): who knows the person
    id finds that id, and with it their kept scores, as who knows one of their match ids could in that match's row.
    """
    return uuid5(_ERASURE_NAMESPACE, f"{tenant_id}:{person_id}")


def erase_notes_of(pulses: Iterable[Pulse], person_id: UUID) -> list[Pulse]:
    """ProfileErased: drop the person's free text; scores stay as anonymous figures for the program's reports."""
    erased: list[Pulse] = []
    for pulse in pulses:
        if pulse.respondent_id == person_id and pulse.answers is not None:
            scores, _ = split_answers(pulse.answers)
            pulse = pulse.model_copy(update={"answers": dict(scores), "concern_flagged": False})
        erased.append(pulse)
    return erased


# ---------------------------------------------------------------------------------------------------------------
# Small-group suppression

Dimension = str
CellKey = tuple[tuple[Dimension, str], ...]  # (dimension, value) pairs in breakdown order; () is the grand total
Breakdown = tuple[Dimension, ...]


class SuppressionReason(StrEnum):
    SMALL_GROUP = "small_group"  # primary: fewer people than the minimum
    COMPLEMENTARY = "complementary"  # secondary: hidden so a small group cannot be recovered by subtraction


@dataclass(frozen=True)
class AdditiveGroup:
    """``parent`` = sum of ``children`` for every additive figure (counts, sums) of the report."""

    parent: CellKey
    children: tuple[CellKey, ...]


def breakdown_of(key: CellKey) -> Breakdown:
    return tuple(dimension for dimension, _ in key)


def additive_groups(cells: Iterable[CellKey], breakdowns: Sequence[Breakdown]) -> list[AdditiveGroup]:
    """Every parent = Σ children relation among the reported cells.

    For a reported breakdown B and each dimension d of B whose coarser breakdown B \\ {d} is reported too (the
    empty breakdown being the total), each B \\ {d} cell is the sum of its B cells. A cell of (campus, role)
    is therefore the child of both its campus cell and its role cell: overlapping groups are covered.
    """
    reported = {tuple(breakdown) for breakdown in breakdowns}
    by_breakdown: dict[Breakdown, list[CellKey]] = defaultdict(list)
    for key in cells:
        by_breakdown[breakdown_of(key)].append(key)
    groups: list[AdditiveGroup] = []
    for breakdown, keys in by_breakdown.items():
        for position, _dimension in enumerate(breakdown):
            coarser = breakdown[:position] + breakdown[position + 1 :]
            if coarser not in reported:
                continue
            children: dict[CellKey, list[CellKey]] = defaultdict(list)
            for key in keys:
                children[key[:position] + key[position + 1 :]].append(key)
            groups.extend(AdditiveGroup(parent, tuple(sorted(kids))) for parent, kids in sorted(children.items()))
    return groups


def suppress_small_groups(
    sizes: Mapping[CellKey, int],
    groups: Sequence[AdditiveGroup],
    min_size: int = DEFAULT_MIN_GROUP_SIZE,
) -> dict[CellKey, SuppressionReason]:
    """Hidden cells and why: primary for small cells, then complementary until no relation gives one away.

    Per relation parent = Σ children, with the parent visible:
      - exactly one hidden child would be recovered by subtraction, and
      - several hidden children together smaller than ``min_size`` would reveal that small combined group,
    so the smallest visible sibling is hidden too (the parent if no sibling is left). With the parent hidden and
    every child visible the parent is their sum, so the smallest child is hidden. A hidden cell can make
    another relation unsafe, hence the loop until nothing changes (it ends: cells are only ever added).
    """
    if min_size < 1:
        raise ValueError("min_size must be at least 1")
    hidden: dict[CellKey, SuppressionReason] = {
        key: SuppressionReason.SMALL_GROUP for key, size in sizes.items() if size < min_size
    }
    changed = True
    while changed:
        changed = False
        for group in groups:
            if group.parent not in sizes:
                continue
            to_hide = _complement_needed(group, sizes, hidden, min_size)
            if to_hide is not None:
                hidden[to_hide] = SuppressionReason.COMPLEMENTARY
                changed = True
    return hidden


def _complement_needed(
    group: AdditiveGroup,
    sizes: Mapping[CellKey, int],
    hidden: Mapping[CellKey, SuppressionReason],
    min_size: int,
) -> CellKey | None:
    children = [child for child in group.children if child in sizes]
    hidden_children = [child for child in children if child in hidden]
    visible_children = sorted((sizes[child], child) for child in children if child not in hidden)
    if group.parent in hidden:
        if hidden_children or not visible_children:
            return None
        return visible_children[0][1]
    if not hidden_children:
        return None
    hidden_total = sum(sizes[child] for child in hidden_children)
    if len(hidden_children) >= 2 and hidden_total >= min_size:
        return None
    return visible_children[0][1] if visible_children else group.parent


def cells_recoverable_by_subtraction(
    sizes: Mapping[CellKey, int], groups: Sequence[AdditiveGroup], hidden: Iterable[CellKey]
) -> dict[CellKey, int]:
    """Audit: hidden cells whose figure an attacker can compute exactly from the visible ones.

    Repeatedly solves every relation that has a single unknown term (recovered values become known and may
    unlock further relations). Returns the recovered cells with their value.
    """
    unknown = set(hidden)
    known: dict[CellKey, int] = {key: size for key, size in sizes.items() if key not in unknown}
    recovered: dict[CellKey, int] = {}
    progress = True
    while progress:
        progress = False
        for group in groups:
            if group.parent not in sizes:
                continue
            children = [child for child in group.children if child in sizes]
            terms = [group.parent, *children]
            missing = [term for term in terms if term not in known]
            if len(missing) != 1:
                continue
            (target,) = missing
            if target == group.parent:
                value = sum(known[child] for child in children)
            else:
                value = known[group.parent] - sum(known[child] for child in children if child != target)
            known[target] = recovered[target] = value
            progress = True
    return recovered
