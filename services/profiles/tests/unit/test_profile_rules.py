"""Profile rules of the domain: who owns which field, and the bounds of tenure_start (pure, no I/O)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from services.profiles.domain.model import ProfileFields, ProfilePatch, tenure_start_refusal
from services.profiles.domain.ownership import (
    ORGANISATION_FIELDS,
    PERSON_FIELDS,
    organisation_fields_changed,
    refusal_message,
)


def fields(**overrides: Any) -> ProfileFields:
    base = {"display_name": "Ada", "email": "ada@example.org", "tenure_start": "2020-01-01", "time_zone": "UTC"}
    return ProfileFields.model_validate(base | overrides)


def test_every_profile_field_is_owned_either_by_the_organisation_or_by_the_person() -> None:
    # A new field must be decided here, not silently left editable by the participant.
    assert set(ORGANISATION_FIELDS) | PERSON_FIELDS == set(ProfileFields.model_fields)
    assert not set(ORGANISATION_FIELDS) & PERSON_FIELDS


def test_the_fields_behind_the_matching_hard_rules_belong_to_the_organisation() -> None:
    assert {"manager_person_id", "reporting_line_id", "team", "role_level", "tenure_start"} <= set(ORGANISATION_FIELDS)
    assert {"interests", "goals", "availability", "languages", "blocked_person_ids"} <= PERSON_FIELDS


def test_only_organisation_fields_whose_value_changes_are_reported() -> None:
    current = fields(role_level=2, manager_person_id=uuid.uuid4())
    assert organisation_fields_changed(current, current.model_copy(update={"interests": ("chess",)})) == ()
    changed = current.model_copy(update={"role_level": 99, "manager_person_id": None, "interests": ("chess",)})
    assert organisation_fields_changed(current, changed) == ("manager_person_id", "role_level")


def test_the_refusal_names_the_fields_and_who_sets_them() -> None:
    message = refusal_message(("manager_person_id", "role_level"))
    assert "manager_person_id, role_level" in message
    assert "coordinator" in message
    assert "HR" in message


# 20:00 UTC on 1 March is already 2 March east of UTC (Kiritimati, UTC+14): "today" somewhere on Earth.
EVENING = datetime(2026, 3, 1, 20, 0, tzinfo=UTC)


def test_tenure_start_may_be_a_year_ahead_of_today_anywhere_on_earth_but_not_later() -> None:
    # Upcoming starters are registered before their first day, for onboarding ("buddy") programs.
    assert tenure_start_refusal(date(2027, 3, 3), now=EVENING) is None  # 366 days after 2 March 2026
    assert tenure_start_refusal(date(2027, 3, 4), now=EVENING) == (
        "tenure_start must not be more than a year ahead: 2027-03-04 is after 2027-03-03"
    )


def test_tenure_start_before_1900_is_refused() -> None:
    assert tenure_start_refusal(date(1900, 1, 1)) is None
    assert tenure_start_refusal(date(1899, 12, 31)) == "tenure_start must not be before 1900-01-01"


def test_a_tenure_start_equal_to_the_stored_one_is_not_being_set_so_the_rule_does_not_apply() -> None:
    # A row stored before the rule must not block a save that sends it back (a participant can do nothing else).
    assert tenure_start_refusal(date(3020, 1, 1), stored=date(3020, 1, 1), now=EVENING) is None
    assert tenure_start_refusal(date(1850, 1, 1), stored=date(1850, 1, 1), now=EVENING) is None
    assert tenure_start_refusal(date(3021, 1, 1), stored=date(3020, 1, 1), now=EVENING) is not None


@pytest.mark.parametrize("model", [ProfileFields, ProfilePatch])
def test_the_request_shapes_accept_any_date_so_the_rule_is_decided_against_the_stored_value(
    model: type[ProfileFields | ProfilePatch],
) -> None:
    base = {"display_name": "Ada", "email": "ada@example.org", "time_zone": "UTC"}
    assert model.model_validate(base | {"tenure_start": "3020-01-01"}).tenure_start == date(3020, 1, 1)


@pytest.mark.parametrize("model", [ProfileFields, ProfilePatch])
@pytest.mark.parametrize("level", [-1, 101])
def test_role_level_outside_0_to_100_is_refused(model: type[ProfileFields | ProfilePatch], level: int) -> None:
    base = {"display_name": "Ada", "email": "ada@example.org", "time_zone": "UTC", "tenure_start": "2020-01-01"}
    with pytest.raises(ValidationError) as refused:
        model.model_validate(base | {"role_level": level})
    assert [error["loc"] for error in refused.value.errors()] == [("role_level",)]
