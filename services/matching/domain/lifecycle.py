"""The life of a match: a small, pure state machine.

    pending_approval --approve--> proposed --both accepted--> active --end--> ended
          |                          |
          +--reject--> declined      +--decline / withdraw--> declined
                                     +--window passed--> expired
    (the program's last day passing or its archiving: active --> ended, pending_approval / proposed --> expired;
     its closing: pending_approval / proposed --> expired)

A cohort-round proposal waits in `pending_approval` until a coordinator approves it; nothing is sent before.
Both parties must accept a proposal; for a mentee's own request the request itself is the mentee's acceptance.
Every function returns the new state (or raises `IllegalTransitionError`), so the service stores what it gets.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum


class MatchState(StrEnum):
    PENDING_APPROVAL = "pending_approval"
    PROPOSED = "proposed"
    ACTIVE = "active"
    ENDED = "ended"
    DECLINED = "declined"
    EXPIRED = "expired"


class Party(StrEnum):
    MENTEE = "mentee"
    MENTOR = "mentor"


#: States in which the pair is taken: it may not be proposed again and it holds a slot on both sides.
OPEN_STATES = frozenset({MatchState.PENDING_APPROVAL, MatchState.PROPOSED, MatchState.ACTIVE})
#: States after which the pair is never proposed again.
NEVER_AGAIN_STATES = frozenset({MatchState.ENDED, MatchState.DECLINED})
FINAL_STATES = frozenset({MatchState.ENDED, MatchState.DECLINED, MatchState.EXPIRED})


class IllegalTransitionError(Exception):
    """The match's current state does not lead where the caller asked (HTTP 409)."""

    def __init__(self, current: MatchState, action: str, why: str = "") -> None:
        self.current = current
        self.action = action
        super().__init__(f"cannot {action} a match that is {current.value}" + (f": {why}" if why else ""))


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """The part of a match the state machine decides on."""

    state: MatchState
    mentee_accepted: bool = False
    mentor_accepted: bool = False
    expires_at: datetime | None = None

    def is_expired_at(self, now: datetime) -> bool:
        return self.state is MatchState.PROPOSED and self.expires_at is not None and now >= self.expires_at

    def accepted_by(self, party: Party) -> bool:
        return self.mentee_accepted if party is Party.MENTEE else self.mentor_accepted


def _require(lifecycle: Lifecycle, action: str, *allowed: MatchState) -> None:
    if lifecycle.state not in allowed:
        raise IllegalTransitionError(lifecycle.state, action)


def approve(lifecycle: Lifecycle, expires_at: datetime | None) -> Lifecycle:
    """A coordinator releases a round proposal: it is now sent to both parties."""
    _require(lifecycle, "approve", MatchState.PENDING_APPROVAL)
    return replace(lifecycle, state=MatchState.PROPOSED, expires_at=expires_at)


def reject(lifecycle: Lifecycle) -> Lifecycle:
    """A coordinator drops a round proposal before it was sent."""
    _require(lifecycle, "reject", MatchState.PENDING_APPROVAL)
    return replace(lifecycle, state=MatchState.DECLINED)


def accept(lifecycle: Lifecycle, party: Party, now: datetime) -> Lifecycle:
    """One party consents; the match becomes active once both have."""
    if lifecycle.is_expired_at(now):
        raise IllegalTransitionError(MatchState.EXPIRED, "accept", "the proposal expired")
    _require(lifecycle, "accept", MatchState.PROPOSED)
    if lifecycle.accepted_by(party):
        raise IllegalTransitionError(lifecycle.state, "accept", f"the {party.value} already accepted")
    accepted = (
        replace(lifecycle, mentee_accepted=True) if party is Party.MENTEE else replace(lifecycle, mentor_accepted=True)
    )
    if accepted.mentee_accepted and accepted.mentor_accepted:
        return replace(accepted, state=MatchState.ACTIVE, expires_at=None)
    return accepted


def decline(lifecycle: Lifecycle, now: datetime) -> Lifecycle:
    """A party (or a coordinator) turns a sent proposal down, or a mentee withdraws their request."""
    if lifecycle.is_expired_at(now):
        raise IllegalTransitionError(MatchState.EXPIRED, "decline", "the proposal expired")
    _require(lifecycle, "decline", MatchState.PROPOSED)
    return replace(lifecycle, state=MatchState.DECLINED)


def expire(lifecycle: Lifecycle, now: datetime) -> Lifecycle:
    """The answer window passed without both consents."""
    if not lifecycle.is_expired_at(now):
        raise IllegalTransitionError(lifecycle.state, "expire", "the proposal is not past its window")
    return replace(lifecycle, state=MatchState.EXPIRED)


def lapse(lifecycle: Lifecycle) -> Lifecycle:
    """The program ended before the proposal was answered (or approved): it expires with it."""
    _require(lifecycle, "lapse", MatchState.PENDING_APPROVAL, MatchState.PROPOSED)
    return replace(lifecycle, state=MatchState.EXPIRED)


def end(lifecycle: Lifecycle) -> Lifecycle:
    """Either party or a coordinator ends an active match."""
    _require(lifecycle, "end", MatchState.ACTIVE)
    return replace(lifecycle, state=MatchState.ENDED)


def withdraw(lifecycle: Lifecycle) -> Lifecycle:
    """The system closes a match whose participant left (erasure): proposals decline, active matches end."""
    if lifecycle.state is MatchState.ACTIVE:
        return replace(lifecycle, state=MatchState.ENDED)
    _require(lifecycle, "withdraw", MatchState.PENDING_APPROVAL, MatchState.PROPOSED)
    return replace(lifecycle, state=MatchState.DECLINED)
