"""What the API documents about a match for the coordinators who read it."""

from __future__ import annotations

from services.matching.entrypoints.schemas import MatchOut


def rematch_offered_description() -> str:
    description: str = MatchOut.model_json_schema()["properties"]["rematch_offered"]["description"]
    return " ".join(description.split())


def test_rematch_offered_says_what_an_erased_mentor_or_mentee_gives() -> None:
    description = rematch_offered_description()

    assert "the mentor left the program or was erased" in description
    assert "false when the mentee left the program or was erased" in description


def test_rematch_offered_says_when_it_is_null_without_a_date_no_deployment_shares() -> None:
    description = rematch_offered_description()

    assert "declined or expired" in description, "a proposal that never became a match has no end to tell"
    assert "left the program or was erased before" in description, "ends by erasure were not recorded either"
    assert "migration 0005" in description
    assert "2026-12-08" not in description, "each deployment ran the migration on its own day"
