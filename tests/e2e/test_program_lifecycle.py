"""A program's whole lifecycle across the four services, each a separate process, through public HTTP and events only.

The steps run in order and share what they created (`Journey`); a step whose prerequisite failed is skipped
naming it, so one broken service does not hide what the others can do. The last test checks that every event the
run produced validates against the committed JSON Schemas in docs/events/schemas/.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import httpx
import pytest

from deploy.local.client import ApiClient, ServiceError, StackEndpoints
from deploy.local.demo import (
    DemoProgram,
    coordinator,
    create_program,
    import_csv,
    participant,
    participants_csv,
    resolve_people,
    shortlist,
    wait_until,
)
from deploy.local.events_tail import StreamRecord, schema_errors
from shared.events.registry import TOPICS
from tests.e2e.conftest import EventRecorder

pytestmark = pytest.mark.integration

MENTORS, MENTEES = 8, 12
LOW_PULSE = {"usefulness": 1, "trust": 1, "meeting_happened": False, "goal_progress": 1}
AGREEMENT = {
    "aspirations": {"hopes": "settle into the lab", "commitment": 4},
    "communication": {"channel": "video", "frequency": "fortnightly", "response_time": "within_two_days"},
    "well_being": {"openness_to_personal_topics": 4, "boundaries": ""},
    "work_feedback": {"wants_feedback_on_work": 4, "style": "direct"},
    "conflict_resolution": {"approach": "raise_immediately", "comfort_raising_issues": 4},
    "career_development": {"importance": 3},
    "goals": {"goals": ["Submit the first paper"]},
}


@dataclass
class Journey:
    """What the steps created, in the order they created it."""

    stack: StackEndpoints
    events: EventRecorder
    program: DemoProgram | None = None
    chosen_match: dict[str, Any] | None = None  # the mentee-chosen match (short list → request → accepted)
    round_match: dict[str, Any] | None = None  # a cohort-round proposal both accepted
    at_risk: bool = False
    rematch: dict[str, Any] | None = None
    erased_person: str | None = None
    done: set[str] = field(default_factory=set)

    def need(self, *steps: str) -> None:
        missing = [s for s in steps if s not in self.done]
        if missing:
            pytest.skip(f"needs the earlier step(s) {', '.join(missing)}, which did not pass")

    def coordinator(self) -> ApiClient:
        assert self.program is not None
        return coordinator(self.stack, self.program)

    def person(self, person_id: str) -> ApiClient:
        assert self.program is not None
        return participant(self.stack, self.program, person_id)

    def event(self, what: str, ce_type: str, where: Callable[[dict[str, Any]], bool], **kw: Any) -> StreamRecord:
        def matches(record: StreamRecord) -> bool:
            assert record.envelope is not None
            return record.ce_type == ce_type and where(record.envelope.data.model_dump(mode="json"))

        return self.events.wait_for(what, matches, **kw)[0]


@pytest.fixture(scope="module")
def journey(e2e_stack: StackEndpoints, events: EventRecorder) -> Journey:
    return Journey(e2e_stack, events)


def test_an_operator_creates_the_organisation_and_an_active_program(journey: Journey) -> None:
    journey.program = program = create_program(
        journey.stack,
        organisation="E2E University",
        program="E2E peer mentoring",
        cadence_days=1,
        first_meeting_within_days=1,
    )
    with journey.coordinator() as coord:
        read = coord.get("profiles", f"/v1/programs/{journey.program.program_id}")
    assert read["status"] == "active"
    assert len(read["campus_ids"]) == 3
    journey.event(
        "ProgramUpdated", "org.mentorloom.program.updated.v1", lambda d: d["program_id"] == program.program_id
    )
    journey.done.add("program")


def test_participants_arrive_by_csv_import_and_every_row_is_imported(journey: Journey) -> None:
    journey.need("program")
    program = journey.program
    assert program is not None
    body, people = participants_csv(MENTORS, MENTEES, seed=11, domain="e2e.example.edu")
    with journey.coordinator() as coord:
        report = import_csv(coord, program.program_id, body.encode())
        assert (report["status"], report["rows_imported"], report["rows_failed"]) == ("completed", 20, 0)
        resolve_people(coord, program, people)
    assert (len(program.mentors), len(program.mentees)) == (MENTORS, MENTEES)
    journey.events.wait_for(
        "an EnrollmentChanged per imported row",
        lambda r: (
            r.ce_type == "org.mentorloom.enrollment.changed.v1"
            and r.envelope is not None
            and str(r.envelope.tenant_id) == program.organisation_id
        ),
        count=MENTORS + MENTEES,
    )
    journey.done.add("import")


def test_a_mentee_replaces_their_needs_inventory(journey: Journey) -> None:
    journey.need("import")
    assert journey.program is not None
    mentee = next(iter(journey.program.mentees.values()))
    inventory = [
        {"function_key": "writing_publishing", "level": "critical"},
        {"function_key": "belonging_community", "level": "important"},
        {"function_key": "job_search", "level": "not_relevant"},
    ]
    with journey.person(mentee) as me:
        etag = me.etag("profiles", f"/v1/participants/{mentee}/needs")
        me.put("profiles", f"/v1/participants/{mentee}/needs", {"needs": inventory}, if_match=etag)
        stored = me.get("profiles", f"/v1/participants/{mentee}/needs")
    assert {(n["function_key"], n["level"]) for n in stored["needs"]} == {
        (n["function_key"], n["level"]) for n in inventory
    }
    journey.event(
        "ProfileUpdated with the new needs",
        "org.mentorloom.profile.updated.v1",
        lambda d: d["person_id"] == mentee and any(n.get("function_key") == "writing_publishing" for n in d["needs"]),
    )
    journey.done.add("needs")


def test_a_mentee_picks_from_an_explained_short_list_and_the_mentor_accepts(journey: Journey) -> None:
    journey.need("needs")
    program = journey.program
    assert program is not None
    mentee = next(iter(program.mentees.values()))
    with journey.coordinator() as coord:
        listed = wait_until(
            "a short list", lambda: (found := shortlist(coord, program, mentee))["entries"] and found, 90
        )
    assert 3 <= len(listed["entries"]) <= 4
    assert all(entry["explanation"] for entry in listed["entries"])
    mentor = listed["entries"][0]["mentor_person_id"]
    with journey.person(mentee) as me:
        asked = me.post(
            "matching",
            f"/v1/programs/{program.program_id}/mentees/{mentee}/requests",
            {"mentor_person_id": mentor},
        )
    with journey.person(mentor) as them:
        journey.chosen_match = them.post("matching", f"/v1/matches/{asked['match_id']}/accept")
    assert journey.chosen_match is not None
    assert journey.chosen_match["state"] == "active"
    journey.event("MatchAccepted", "org.mentorloom.match.accepted.v1", lambda d: d["match_id"] == asked["match_id"])
    journey.done.add("chosen")


def test_a_cohort_round_is_run_approved_and_a_proposal_accepted_by_both(journey: Journey) -> None:
    journey.need("chosen")
    assert journey.program is not None
    with journey.coordinator() as coord:
        ran = coord.post("matching", f"/v1/programs/{journey.program.program_id}/rounds")
        assert ran["status"] == "pending_approval"
        assert ran["report"]["mentee_count"] == MENTEES - 1, "the mentee matched by choice is not in the round"
        assert ran["report"]["proposal_count"] >= 1
        approved = coord.post("matching", f"/v1/rounds/{ran['round_id']}/approve", {})
    assert approved["status"] == "approved"
    journey.event(
        "MatchRoundCompleted", "org.mentorloom.match-round.completed.v1", lambda d: d["round_id"] == ran["round_id"]
    )
    proposal = approved["proposals"][0]
    for person in (proposal["mentee_person_id"], proposal["mentor_person_id"]):
        with journey.person(person) as party:
            journey.round_match = party.post("matching", f"/v1/matches/{proposal['match_id']}/accept")
    assert journey.round_match is not None
    assert journey.round_match["state"] == "active"
    journey.done.add("round")


def test_check_in_due_arrives_once_scheduling_time_has_passed_the_cadence(journey: Journey) -> None:
    journey.need("chosen")
    assert journey.chosen_match is not None
    match_id = journey.chosen_match["match_id"]
    due = journey.event(
        "CheckInDue of the chosen match", "org.mentorloom.check-in.due.v1", lambda d: d["match_id"] == match_id
    )
    assert due.envelope is not None
    with journey.coordinator() as coord:
        check_ins = list(coord.pages("scheduling", f"/v1/matches/{match_id}/check-ins"))
    assert any(c["state"] == "due" for c in check_ins)
    with journey.person(journey.chosen_match["mentee_person_id"]) as me:
        feed_url = me.post("scheduling", "/v1/me/calendar-feed")["url"]
    feed = httpx.get(feed_url, timeout=30)  # the URL is its own credential: a calendar app fetches it as it is
    assert feed.status_code == 200, feed_url
    assert feed.text.startswith("BEGIN:VCALENDAR")
    journey.done.add("check-in due")


def test_both_fill_the_expectations_agreement_and_see_where_they_converge(journey: Journey) -> None:
    journey.need("chosen")
    assert journey.chosen_match is not None
    match_id = journey.chosen_match["match_id"]
    mentee, mentor = journey.chosen_match["mentee_person_id"], journey.chosen_match["mentor_person_id"]
    with journey.person(mentee) as me:
        wait_until("feedback to know the match", lambda: _agreement_reachable(me, match_id), 60)
        me.put("feedback", f"/v1/matches/{match_id}/agreement/answers", AGREEMENT)
    with journey.person(mentor) as them:
        them.put(
            "feedback",
            f"/v1/matches/{match_id}/agreement/answers",
            {**AGREEMENT, "work_feedback": {"wants_feedback_on_work": 2, "style": "gentle"}},
        )
        seen = them.get("feedback", f"/v1/matches/{match_id}/agreement")
    assert seen["partner_has_submitted"]
    assert seen["comparison"] is not None
    journey.done.add("agreement")


def test_a_low_pulse_marks_the_match_at_risk_for_the_coordinator(journey: Journey) -> None:
    journey.need("check-in due")
    assert journey.chosen_match is not None
    match_id, program_id = journey.chosen_match["match_id"], journey.chosen_match["program_id"]
    for person in (journey.chosen_match["mentee_person_id"], journey.chosen_match["mentor_person_id"]):
        with journey.person(person) as me:
            mine = wait_until("an open pulse", partial(_open_pulse, me, match_id), 60)
            me.post("feedback", f"/v1/pulses/{mine['pulse_id']}/answers", {"answers": LOW_PULSE})
    journey.event(
        "FeedbackSubmitted of both parties",
        "org.mentorloom.feedback.submitted.v1",
        lambda d: d["match_id"] == match_id,
        count=2,
    )
    # Feedback's clock is moved like scheduling's, so the check-in is due there too and the low ratings count.
    # The program's first-meeting milestone (1 day) has passed without a meeting as well, so the match may have
    # entered at risk for that reason before the pulses arrived: MatchAtRisk is emitted once per crossing, and the
    # low ratings then show in the reasons the coordinator reads.
    flagged_event = journey.event(
        "MatchAtRisk(at_risk=true)",
        "org.mentorloom.match.at-risk.v1",
        lambda d: d["match_id"] == match_id and d["at_risk"],
        timeout=30,
    )
    assert flagged_event.envelope is not None
    assert set(flagged_event.envelope.data.model_dump(mode="json")["reasons"]) & {"low_ratings", "no_first_meeting"}

    def reasons_listed(coord: ApiClient) -> set[str]:
        entries = [
            e for e in coord.pages("feedback", f"/v1/programs/{program_id}/at-risk") if e["match_id"] == match_id
        ]
        return {reason["code"] for entry in entries for reason in entry["reasons"]}

    with journey.coordinator() as coord:
        flagged = wait_until(
            "matching to flag the match", lambda: coord.get("matching", f"/v1/matches/{match_id}")["at_risk"], 30
        )
        listed = wait_until("the low ratings among the reasons", lambda: "low_ratings" in reasons_listed(coord), 30)
    assert flagged
    assert listed
    journey.at_risk = True
    journey.done.add("at risk")


def test_the_mentee_exits_without_explaining_and_is_matched_again(journey: Journey) -> None:
    journey.need("chosen")
    assert journey.program is not None
    assert journey.chosen_match is not None
    match_id = journey.chosen_match["match_id"]
    mentee, old_mentor = journey.chosen_match["mentee_person_id"], journey.chosen_match["mentor_person_id"]
    with journey.person(mentee) as me:
        ended = me.post(
            "matching",
            f"/v1/matches/{match_id}/end",
            {"reason_category": "not_a_good_fit", "private_reason": "We never found a rhythm."},
        )
        assert ended["match"]["state"] == "ended"
        assert ended["match"]["end_reason_private"] is None, "the private reason is for coordinators only"
        fresh = ended["rematch"]
        assert fresh is not None
        assert fresh["entries"]
        assert old_mentor not in {e["mentor_person_id"] for e in fresh["entries"]}, "an ended pair is never re-proposed"
        new_mentor = fresh["entries"][0]["mentor_person_id"]
        asked = me.post(
            "matching",
            f"/v1/programs/{journey.program.program_id}/mentees/{mentee}/requests",
            {"mentor_person_id": new_mentor},
        )
    ended_event = journey.event("MatchEnded", "org.mentorloom.match.ended.v1", lambda d: d["match_id"] == match_id)
    assert "We never found" not in (ended_event.value or b"").decode(), "the private reason never travels"
    with journey.person(new_mentor) as them:
        journey.rematch = them.post("matching", f"/v1/matches/{asked['match_id']}/accept")
    assert journey.rematch is not None
    assert journey.rematch["state"] == "active"
    journey.done.add("rematch")


def test_an_erased_person_disappears_from_every_service(journey: Journey) -> None:
    journey.need("rematch")
    assert journey.program is not None
    assert journey.rematch is not None
    mentee = journey.rematch["mentee_person_id"]
    with journey.person(mentee) as me:
        etag = me.etag("profiles", f"/v1/participants/{mentee}")
        me.delete("profiles", f"/v1/participants/{mentee}", if_match=etag)
    journey.erased_person = mentee
    journey.event("ProfileErased", "org.mentorloom.profile.erased.v1", lambda d: d["person_id"] == mentee)
    journey.event(
        "MatchEnded because of the erasure",
        "org.mentorloom.match.ended.v1",
        lambda d: d["match_id"] == journey.rematch["match_id"] and d["reason_category"] == "participant_erased",  # type: ignore[index]
    )
    with journey.coordinator() as coord:
        assert _status(lambda: coord.get("profiles", f"/v1/participants/{mentee}")) == 404
        assert _status(lambda: shortlist(coord, journey.program, mentee)) == 404  # type: ignore[arg-type]
        participants = list(coord.pages("profiles", "/v1/participants"))
        assert mentee not in {p["id"] for p in participants}
        # No other service shows the person's profile data: matching closed their matches ...
        open_matches = [
            m
            for m in coord.pages("matching", f"/v1/programs/{journey.program.program_id}/matches")
            if mentee in (m["mentee_person_id"], m["mentor_person_id"]) and m["state"] in {"proposed", "active"}
        ]
        assert open_matches == []
        # ... and scheduling cancelled what was still planned for them.
        check_ins = list(coord.pages("scheduling", f"/v1/matches/{journey.rematch['match_id']}/check-ins"))
        assert all(c["state"] in {"cancelled", "completed", "missed", "due"} for c in check_ins)
    journey.done.add("erased")


def test_the_program_report_reflects_the_whole_journey(journey: Journey) -> None:
    journey.need("round", "rematch", "erased")
    assert journey.program is not None
    program_id = journey.program.program_id
    with journey.coordinator() as coord:
        report = wait_until(
            "the report to count the ended matches",
            lambda: (
                (found := coord.get("feedback", f"/v1/programs/{program_id}/report"))
                and (_grand_total(found)["metrics"]["active_match_rate"] or 1.0) < 1.0
                and found
            ),
            30,
        )
        csv_export = coord.request("feedback", "GET", f"/v1/programs/{program_id}/report.csv").text
    total = _grand_total(report)
    # Four matches became active (chosen, round, re-match; the chosen one ended by exit, the re-match by erasure).
    assert total["participants"] is not None
    assert total["participants"] >= 4
    assert 0.0 < total["metrics"]["active_match_rate"] < 1.0
    assert "active_match_rate" in csv_export.splitlines()[0]
    journey.done.add("report")


def _grand_total(report: dict[str, Any]) -> dict[str, Any]:
    return next(row for row in report["rows"] if not row["breakdown"])


def test_every_event_on_the_stream_validates_against_the_committed_json_schemas(journey: Journey) -> None:
    journey.need("program")
    records = journey.events.snapshot()
    assert {r.topic for r in records} <= set(TOPICS)
    assert len(records) >= MENTORS + MENTEES
    problems = {
        f"{r.topic}:{r.partition}:{r.offset} {r.ce_type}": (r.error or "") + "; ".join(schema_errors(r))
        for r in records
        if r.error or schema_errors(r)
    }
    assert problems == {}


def _status(call: Callable[[], Any]) -> int:
    try:
        call()
    except ServiceError as exc:
        return exc.status_code
    return 200


def _agreement_reachable(client: ApiClient, match_id: str) -> bool:
    return _status(lambda: client.get("feedback", f"/v1/matches/{match_id}/agreement")) == 200


def _open_pulse(client: ApiClient, match_id: str) -> dict[str, Any] | None:
    for pulse in client.pages("feedback", "/v1/me/pulses"):
        if pulse["match_id"] == match_id and pulse["status"] == "open":
            return dict(pulse)
    return None
