"""What the contract promises about privacy, and the invariants the models enforce."""

from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from shared.events import FeedbackSubmitted, MatchEnded, ProfileErased, samples
from shared.events.generate import event_schema
from shared.events.registry import spec_for
from shared.events.values import AvailabilityWindow, EndReasonCategory, MatchingPolicy, SeniorityRule


def free_text_fields(schema: dict[str, Any]) -> list[str]:
    """Paths of string fields that accept arbitrary text (no enum, const, pattern or format)."""
    found: list[str] = []

    def visit(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                visit(resolve(node["$ref"]), path)
            if node.get("type") == "string" and not {"enum", "const", "pattern", "format"} & node.keys():
                found.append(path)
            for keyword in ("anyOf", "oneOf", "allOf"):
                for branch in node.get(keyword, []):
                    visit(branch, path)
            for name, child in node.get("properties", {}).items():
                visit(child, f"{path}/{name}")
            for keyword in ("items", "additionalProperties", "propertyNames"):
                if isinstance(node.get(keyword), dict):
                    visit(node[keyword], f"{path}/{keyword}")

    def resolve(reference: str) -> Any:
        return schema["$defs"][reference.removeprefix("#/$defs/")]

    visit(schema, "")
    return found


@pytest.mark.parametrize("model", [FeedbackSubmitted, MatchEnded, ProfileErased])
def test_events_that_must_not_leak_private_text_have_no_free_text_field(model):
    assert free_text_fields(event_schema(spec_for(model))) == []


def test_the_free_text_detector_finds_free_text_where_there_is_some():
    profile_schema = event_schema(spec_for(samples.profile_updated()))
    assert "/goals/text" in free_text_fields(profile_schema)


def test_feedback_scores_are_numbers_by_question_key_and_text_is_refused():
    with pytest.raises(ValidationError):
        samples.feedback_submitted(scores={"usefulness": "great, thanks!"})
    with pytest.raises(ValidationError):
        samples.feedback_submitted(scores={"Not A Key!": 3})


def test_a_match_end_reason_outside_the_categories_is_refused():
    with pytest.raises(ValidationError):
        samples.match_ended(reason_category="my mentor never listens")


def test_affinity_attributes_require_consent():
    with pytest.raises(ValidationError, match="affinity"):
        samples.profile_updated(consent={"affinity_matching": False})
    assert samples.profile_updated(consent={}, affinity_attributes=()).affinity_attributes == ()


def test_a_person_cannot_block_themselves():
    with pytest.raises(ValidationError, match="block"):
        samples.profile_updated(blocked_person_ids=(samples.MENTEE_ID,))


def test_an_unknown_time_zone_is_refused():
    with pytest.raises(ValidationError, match="time zone"):
        samples.profile_updated(time_zone="Mars/Olympus_Mons")


def test_a_need_rated_twice_is_refused():
    need = {"function_key": "writing_publishing", "level": "critical"}
    with pytest.raises(ValidationError, match="duplicate"):
        samples.profile_updated(needs=(need, {**need, "level": "important"}))


def test_list_sizes_are_bounded():
    with pytest.raises(ValidationError):
        samples.profile_updated(interests=tuple(f"interest {number}" for number in range(51)))


def test_unknown_fields_are_refused_when_building_an_event():
    with pytest.raises(ValidationError, match="Extra inputs"):
        MatchEnded.model_validate({**samples.match_ended().model_dump(), "private_reason": "secret"})


def test_events_are_immutable():
    event = samples.match_ended()
    with pytest.raises(ValidationError):
        event.reason_category = EndReasonCategory.OTHER  # type: ignore[misc]


def test_an_availability_window_must_start_before_it_ends_and_carry_no_offset():
    with pytest.raises(ValidationError, match="start must be before end"):
        AvailabilityWindow(weekday="monday", start=time(18), end=time(17))
    with pytest.raises(ValidationError, match="wall-clock"):
        AvailabilityWindow(weekday="monday", start=time(9, tzinfo=UTC), end=time(10, tzinfo=UTC))


def test_datetimes_must_be_aware_and_are_normalised_to_utc():
    with pytest.raises(ValidationError):
        samples.match_accepted(activated_at=datetime(2025, 9, 15, 9, 30))
    berlin = datetime.fromisoformat("2025-09-15T11:30:00+02:00")
    assert samples.match_accepted(activated_at=berlin).activated_at == datetime(2025, 9, 15, 9, 30, tzinfo=UTC)
    assert samples.match_accepted(activated_at=berlin).activated_at.tzinfo is UTC


def test_a_program_ends_after_it_starts():
    program = samples.program_updated()
    with pytest.raises(ValidationError, match="ends_on"):
        samples.program_updated(ends_on=program.starts_on)
    assert program.duration == program.ends_on - program.starts_on


def test_matching_policy_limits_short_lists_to_three_or_four_and_networks_to_programs_that_allow_them():
    with pytest.raises(ValidationError):
        MatchingPolicy(proposals_per_mentee=5)
    with pytest.raises(ValidationError, match="allow_mentor_network"):
        MatchingPolicy(allow_mentor_network=False, max_mentors_per_mentee=2)
    with pytest.raises(ValidationError, match="min_level_gap"):
        SeniorityRule(min_level_gap=3, max_level_gap=1)


def test_a_cohort_round_proposal_names_its_round_and_other_proposals_do_not():
    with pytest.raises(ValidationError, match="round_id"):
        samples.match_proposed(origin="cohort_round", round_id=None)
    with pytest.raises(ValidationError, match="round_id"):
        samples.match_proposed(origin="mentee_request")
    assert samples.match_proposed(origin="mentee_request", round_id=None).round_id is None


def test_a_match_needs_two_different_people():
    with pytest.raises(ValidationError, match="different"):
        samples.match_accepted(mentor_person_id=samples.MENTEE_ID)


def test_round_counts_add_up():
    with pytest.raises(ValidationError, match="mentee_count"):
        samples.match_round_completed(unmatched_count=11)


def test_a_meeting_ends_after_it_starts():
    meeting = samples.meeting_scheduled()
    with pytest.raises(ValidationError, match="ends after it starts"):
        samples.meeting_scheduled(ends_at=meeting.starts_at - timedelta(minutes=1))


def test_a_check_in_reminder_comes_no_later_than_the_check_in_is_due():
    due = samples.check_in_reminder_due()
    assert samples.check_in_reminder_due(remind_at=due.due_at).remind_at == due.due_at  # a lead of 0 hours
    with pytest.raises(ValidationError, match="remind_at must not be after due_at"):
        samples.check_in_reminder_due(remind_at=due.due_at + timedelta(seconds=1))
