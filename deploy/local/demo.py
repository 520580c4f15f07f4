"""`mentorloom demo`: seed a realistic program through the public HTTP APIs and drive it through its lifecycle.

Everything goes through the services' HTTP APIs with dev tokens, as an HR integration, a coordinator and the
participants would: organisation and campuses → program with its policy → participants by CSV import → a wait until
matching's pool holds every imported participant → a mentee picks from their short list and the mentor accepts → a
cohort round is run and approved → a few proposals accepted.
The seeded ids are saved in `<data dir>/demo.json` so later commands (`import`, `match round`, `token`) default to
the demo's organisation and program.
"""

from __future__ import annotations

import csv
import io
import json
import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from deploy.local.client import INSTALLATION_TENANT, ApiClient, ServiceError, StackEndpoints, mint_token
from deploy.local.invocation import command
from deploy.local.stack import StateFileError

Report = Callable[[str], None]
Progress = Callable[[int, int], None]  # (done, total)
# Shows an upload while it runs: entered just around it, it gives the progress callback (None: nothing to show).
UploadDisplay = Callable[[], AbstractContextManager[Progress | None]]

CAMPUSES = ("North Campus", "Harbour Campus", "Online")
FIRST_NAMES = (
    "Amara", "Lukas", "Mei", "Santiago", "Priya", "Kwame", "Ingrid", "Yusuf", "Sofia", "Hiroshi", "Chloé", "Tariq",
    "Ana", "Oluwaseun", "Freya", "Rahul", "Valentina", "Jin", "Zanele", "Mateo", "Leila", "Erik", "Nia", "Dmitri",
    "Aiyana", "Thabo", "Camila", "Arjun", "Emeka", "Siobhan", "Kenji", "Fatima", "Joaquín", "Hana", "Liam", "Ayesha",
)  # fmt: skip
LAST_NAMES = (
    "Okafor", "Brandt", "Tanaka", "García", "Sharma", "Mensah", "Larsen", "Demir", "Rossi", "Sato", "Dubois",
    "Haddad", "Silva", "Adeyemi", "Nielsen", "Iyer", "López", "Kim", "Dlamini", "Fernández", "Karimi", "Johansson",
    "Mwangi", "Volkov", "Begay", "Nkosi", "Pereira", "Patel", "Eze", "Murphy", "Watanabe", "Rahman", "Costa", "Park",
)  # fmt: skip
# Time zones across continents, each with the languages people there commonly add to English.
TIME_ZONES = (
    ("Europe/Berlin", ("de",)),
    ("Europe/Madrid", ("es",)),
    ("Europe/London", ()),
    ("America/New_York", ("es",)),
    ("America/Sao_Paulo", ("pt-BR",)),
    ("America/Los_Angeles", ()),
    ("Africa/Lagos", ("yo",)),
    ("Africa/Johannesburg", ("zu", "af")),
    ("Asia/Tokyo", ("ja",)),
    ("Asia/Kolkata", ("hi",)),
    ("Asia/Singapore", ("zh", "ms")),
    ("Australia/Sydney", ()),
)
DEPARTMENTS = ("Chemistry", "Physics", "Computer Science", "History", "Economics", "Biology", "Mathematics")
INTERESTS = (
    "climbing", "chess", "music", "film", "cooking", "running", "photography", "gaming", "gardening", "poetry",
    "open_source", "volunteering", "cycling", "languages", "board_games",
)  # fmt: skip
SKILLS = (
    "python", "statistics", "writing", "teaching", "grant_writing", "public_speaking", "lab_safety", "r",
    "data_visualisation", "project_management", "peer_review", "presenting",
)  # fmt: skip
GOALS = ("publishing", "phd", "career", "confidence", "networking", "teaching", "industry", "belonging")
FUNCTIONS = (
    "hidden_curriculum", "study_strategies", "research_methods", "writing_publishing", "conference_networking",
    "career_exploration", "job_search", "time_management", "work_life_balance", "emotional_support",
    "belonging_community",
)  # fmt: skip
NEED_LEVELS = ("critical", "important", "not_relevant")
COMMUNICATION = ("chat", "email", "video_call", "phone", "in_person", "no_preference")
MEETING_FORMAT = ("in_person", "virtual", "either")
CADENCE = ("weekly", "biweekly", "monthly", "flexible")
AFFINITY = ("first_generation", "moved_from_out_of_state", "caregiver", "international")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat")

CSV_COLUMNS = (
    "external_id", "email", "display_name", "campus", "department", "team", "reporting_line_id", "role_level",
    "tenure_start", "time_zone", "languages", "interests", "skills", "goal_tags", "goal_text", "communication",
    "meeting_format", "cadence", "consent_affinity_matching", "consent_share_email", "affinity_attributes",
    "availability", "needs", "offers", "role", "capacity", "status", "cohort",
)  # fmt: skip


@dataclass(frozen=True)
class Person:
    external_id: str
    email: str
    display_name: str
    role: str  # mentor | mentee


def _availability(rng: random.Random) -> str:
    windows = []
    for day in rng.sample(DAYS, rng.randint(2, 4)):
        start = rng.choice((8, 9, 10, 13, 14, 16, 18))
        windows.append(f"{day} {start:02d}:00-{start + rng.choice((1, 2, 3)):02d}:00")
    return ";".join(windows)


def participants_csv(
    mentors: int, mentees: int, *, seed: int = 7, campuses: tuple[str, ...] = CAMPUSES, domain: str = "example.edu"
) -> tuple[str, list[Person]]:
    """A CSV in the profiles import format (docs/profiles/csv-import.md) with varied, plausible people.

    Mentors are more senior (higher `role_level`, earlier tenure) than mentees, so the seniority rule leaves
    most pairs feasible; reporting lines and teams vary so the conflict-of-interest rules have something to do.
    """
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    people: list[Person] = []
    today = datetime.now(UTC).date()
    for index in range(mentors + mentees):
        is_mentor = index < mentors
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        external_id = f"{'M' if is_mentor else 'S'}-{index + 1:05d}"
        email = f"{first.lower()}.{last.lower()}.{index + 1}@{domain}".encode("ascii", "ignore").decode()
        zone, local_languages = rng.choice(TIME_ZONES)
        languages = ["en", *rng.sample(local_languages, min(len(local_languages), rng.randint(0, 2)))]
        department = rng.choice(DEPARTMENTS)
        level = rng.randint(3, 6) if is_mentor else rng.randint(1, 2)
        tenure = today - timedelta(days=(level * 365) + rng.randint(0, 200))
        consent_affinity = rng.random() < 0.4
        if is_mentor:
            needs = ""
            offers = ";".join(rng.sample(FUNCTIONS, rng.randint(3, 6)))
        else:
            rated = rng.sample(FUNCTIONS, rng.randint(3, 6))
            needs = ";".join(f"{key}:{rng.choices(NEED_LEVELS, weights=(2, 3, 1))[0]}" for key in rated)
            offers = ""
        goal_tags = rng.sample(GOALS, rng.randint(1, 3))
        people.append(Person(external_id, email, f"{first} {last}", "mentor" if is_mentor else "mentee"))
        writer.writerow(
            (
                external_id,
                email,
                f"{first} {last}",
                rng.choice(campuses),
                department,
                f"{department} group {rng.randint(1, 6)}",
                f"rl-{department.lower().replace(' ', '-')}-{rng.randint(1, 4)}",
                level,
                tenure.isoformat(),
                zone,
                ";".join(languages),
                ";".join(rng.sample(INTERESTS, rng.randint(2, 5))),
                ";".join(rng.sample(SKILLS, rng.randint(1, 4))),
                ";".join(goal_tags),
                f"I would like help with {' and '.join(goal_tags)}.",
                rng.choice(COMMUNICATION),
                rng.choice(MEETING_FORMAT),
                rng.choice(CADENCE),
                str(consent_affinity).lower(),
                str(rng.random() < 0.5).lower(),
                ";".join(rng.sample(AFFINITY, rng.randint(0, 2))) if consent_affinity else "",
                _availability(rng),
                needs,
                offers,
                "mentor" if is_mentor else "mentee",
                rng.randint(1, 3) if is_mentor else "",
                "active",
                f"{today.year}-intake",
            )
        )
    return out.getvalue(), people


def chunks(data: bytes, progress: Progress | None, size: int = 16 * 1024) -> Iterator[bytes]:
    """The body in pieces, reporting how much was handed to the connection (drives the upload progress bar)."""
    for start in range(0, len(data), size):
        yield data[start : start + size]
        if progress is not None:
            progress(min(start + size, len(data)), len(data))


@dataclass
class DemoProgram:
    """The ids of a seeded program (saved as `demo.json` next to the stack's state)."""

    organisation_id: str
    program_id: str
    campus_ids: dict[str, str]
    mentees: dict[str, str] = field(default_factory=dict)  # external id → person id
    mentors: dict[str, str] = field(default_factory=dict)
    # What the demo made for a newcomer to look at (print_guide's example calls); absent in a file saved before.
    match_id: str | None = None  # the mentee's own request, accepted: an active match with planned check-ins
    round_id: str | None = None  # the approved cohort round

    def save(self, data_dir: Path) -> Path:
        path = data_dir / "demo.json"
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def load(cls, data_dir: Path) -> DemoProgram | None:
        """The saved ids, or None; raises StateFileError when the file is not one `save` wrote."""
        path = data_dir / "demo.json"
        if not path.exists():
            return None
        try:
            seeded = TypeAdapter(cls).validate_json(path.read_bytes())
            for saved_id in (seeded.organisation_id, seeded.program_id):
                uuid.UUID(saved_id)  # later commands build tokens from them
        except (ValidationError, ValueError) as exc:
            raise StateFileError(
                f"The demo's saved ids in {path} are damaged; delete the file (or run `{command('demo')}` again)."
            ) from exc
        return seeded

    @property
    def tenant(self) -> uuid.UUID:
        return uuid.UUID(self.organisation_id)

    @property
    def program(self) -> uuid.UUID:
        return uuid.UUID(self.program_id)


def program_fields(
    name: str, campus_ids: list[str], *, cadence_days: int = 14, first_meeting_within_days: int = 14
) -> dict[str, Any]:
    today = datetime.now(UTC).date()
    return {
        "name": name,
        "starts_on": (today - timedelta(days=7)).isoformat(),
        "ends_on": (today + timedelta(days=300)).isoformat(),
        "status": "active",
        "campus_ids": campus_ids,
        "goals": ["Feel at home in the department", "Finish the first year with a research plan"],
        "check_in_cadence_days": cadence_days,
        "milestones": {"first_meeting_within_days": first_meeting_within_days},
        "min_report_group_size": 2,
        "at_risk_threshold": 0.5,  # the health score blends ratings (60 %) and attendance: all-low ratings reach 0.4
        "default_mentor_capacity": 2,
        "missed_grace_days": 3,
        "pulse_window_days": 7,
        "matching_policy": {
            "proposals_per_mentee": 3,
            "request_window_days": 7,
            "hard_rules": {
                "campus_rule": "any",
                "exclude_same_reporting_line": True,
                "seniority": {"min_level_gap": 1},
            },
        },
    }


def create_program(
    endpoints: StackEndpoints,
    *,
    organisation: str,
    program: str,
    campuses: tuple[str, ...] = CAMPUSES,
    cadence_days: int = 14,
    first_meeting_within_days: int = 14,
) -> DemoProgram:
    """Organisation (as an installation operator), its campuses and one active program (as its operator)."""
    with ApiClient(endpoints, mint_token(INSTALLATION_TENANT, ["operator"])) as installation:
        org = installation.post("profiles", "/v1/organisations", {"name": organisation})
    tenant = uuid.UUID(org["id"])
    with ApiClient(endpoints, mint_token(tenant, ["operator"])) as operator:
        campus_ids = {name: operator.post("profiles", "/v1/campuses", {"name": name})["id"] for name in campuses}
        created = operator.post(
            "profiles",
            "/v1/programs",
            program_fields(
                program,
                list(campus_ids.values()),
                cadence_days=cadence_days,
                first_meeting_within_days=first_meeting_within_days,
            ),
        )
    return DemoProgram(organisation_id=org["id"], program_id=created["id"], campus_ids=campus_ids)


def coordinator(endpoints: StackEndpoints, seeded: DemoProgram) -> ApiClient:
    return ApiClient(endpoints, mint_token(seeded.tenant, ["coordinator"], programs=[seeded.program]))


def participant(endpoints: StackEndpoints, seeded: DemoProgram, person_id: str) -> ApiClient:
    person = uuid.UUID(person_id)
    return ApiClient(endpoints, mint_token(seeded.tenant, ["participant"], programs=[seeded.program], person_id=person))


def import_csv(client: ApiClient, program_id: str, body: bytes, progress: Progress | None = None) -> dict[str, Any]:
    """Upload a CSV to the profiles import endpoint (streamed); the answer is the import report."""
    response = client.request(
        "profiles",
        "POST",
        f"/v1/programs/{program_id}/imports",
        content=chunks(body, progress),
        headers={"Content-Type": "text/csv"},
    )
    report: dict[str, Any] = response.json()
    return report


def resolve_people(client: ApiClient, seeded: DemoProgram, people: list[Person]) -> None:
    """Person ids by external id, from the participant list (the import report only counts rows)."""
    by_external = {p["external_id"]: p["id"] for p in client.pages("profiles", "/v1/participants")}
    for person in people:
        target = seeded.mentors if person.role == "mentor" else seeded.mentees
        if person.external_id in by_external:
            target[person.external_id] = by_external[person.external_id]


class DemoError(Exception):
    """The services answered, but not with what the demo needs to go on; the message says what was missing."""


def wait_until(what: str, probe: Callable[[], Any], timeout: float = 60.0, interval: float = 0.5) -> Any:
    """Poll `probe` until it returns something truthy (events take a moment to reach the other services)."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            found = probe()
            if found:
                return found
        except ServiceError as exc:
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"gave up waiting for {what} after {timeout:.0f} s" + (f" ({last_error})" if last_error else ""))


def shortlist(client: ApiClient, seeded: DemoProgram, mentee_id: str) -> dict[str, Any]:
    found: dict[str, Any] = client.get("matching", f"/v1/programs/{seeded.program_id}/mentees/{mentee_id}/shortlist")
    return found


def pool(client: ApiClient, seeded: DemoProgram) -> dict[str, Any]:
    """The program's pool as matching sees it (404 until matching has received the program)."""
    found: dict[str, Any] = client.get("matching", f"/v1/programs/{seeded.program_id}/pool")
    return found


def wait_for_pool(
    client: ApiClient, seeded: DemoProgram, timeout: float = 120.0, interval: float = 0.5
) -> dict[str, Any]:
    """Poll matching's pool until it holds every imported mentee and mentor with their profile.

    Matching learns participants from events a moment after the import: a round run before they have all arrived
    covers only the mentees matching knows so far.
    """
    mentees, mentors = len(seeded.mentees), len(seeded.mentors)
    last: dict[str, Any] | None = None

    def everyone() -> dict[str, Any] | None:
        nonlocal last
        last = pool(client, seeded)
        complete = last["mentees"]["matchable"] >= mentees and last["mentors"]["matchable"] >= mentors
        return last if complete else None

    try:
        found: dict[str, Any] = wait_until(
            "the matching service to receive the program", everyone, timeout=timeout, interval=interval
        )
    except TimeoutError:
        if last is None:  # never readable: the message names the service's last answer
            raise
        seen_mentees, seen_mentors = last["mentees"], last["mentors"]
        raise TimeoutError(
            f"gave up waiting for the matching service to receive every imported participant after {timeout:.0f} s: "
            f"it knows {seen_mentees['matchable']} of the {mentees} mentees and {seen_mentors['matchable']} of the "
            f"{mentors} mentors ({seen_mentees['without_profile']} mentee and {seen_mentors['without_profile']} "
            "mentor enrolments still wait for their profile); the cohort round would leave the others out"
        ) from None
    return found


@dataclass
class DemoOutcome:
    seeded: DemoProgram
    import_report: dict[str, Any]
    requested_match: dict[str, Any] | None
    round: dict[str, Any] | None
    accepted_from_round: int
    matches_by_state: dict[str, int]


def run_demo(
    endpoints: StackEndpoints,
    *,
    mentors: int = 120,
    mentees: int = 240,
    report: Report = print,
    upload_display: UploadDisplay = nullcontext,
    accept_from_round: int = 12,
    pool_timeout: float = 120.0,
) -> DemoOutcome:
    """Seed a program and drive it: short list and request, cohort round, approvals, acceptances.

    `upload_display` is entered around the CSV upload only, so a progress bar ends before the next line is reported.
    Nothing is matched before matching's pool holds every imported participant (`pool_timeout` seconds at most).
    """
    stamp = date.today().isoformat()
    seeded = create_program(
        endpoints,
        organisation=f"Northbridge University ({uuid.uuid4().hex[:6]})",
        program=f"First-year peer mentoring {stamp}",
    )
    report(f"organisation {seeded.organisation_id} with campuses {', '.join(seeded.campus_ids)}")
    report(f"program {seeded.program_id} (active, 14-day check-ins, short lists of 3)")

    body, people = participants_csv(mentors, mentees)
    with coordinator(endpoints, seeded) as coord:
        with upload_display() as progress:
            imported = import_csv(coord, seeded.program_id, body.encode(), progress)
        report(
            f"imported {imported['rows_imported']} participants ({mentors} mentors, {mentees} mentees) "
            f"from CSV; {imported['rows_failed']} rows failed"
        )
        resolve_people(coord, seeded, people)
        if not seeded.mentees:
            raise DemoError(
                f"none of the {mentees} imported mentees is in the program's participant list "
                f"({imported['rows_imported']} rows imported, {imported['rows_failed']} failed)"
            )

        waited = time.monotonic()
        known = wait_for_pool(coord, seeded, timeout=pool_timeout)
        report(
            f"matching knows every imported participant: {known['mentees']['matchable']} mentees, "
            f"{known['mentors']['matchable']} mentors with {known['mentors']['capacity_total']} mentoring slots "
            f"(after {time.monotonic() - waited:.0f} s)"
        )

        first_mentee = next(iter(seeded.mentees.values()))
        listed = wait_until(
            "the matching service to learn the program",
            lambda: (found := shortlist(coord, seeded, first_mentee))["entries"] and found,
            timeout=120,
        )
        top = listed["entries"][0]
        report(f"short list for a mentee: {len(listed['entries'])} mentors; #1 scores {top['score']:.2f}")
        report(f"   why: {top['explanation']}")

        requested: dict[str, Any] | None = None
        with participant(endpoints, seeded, first_mentee) as mentee:
            requested = mentee.post(
                "matching",
                f"/v1/programs/{seeded.program_id}/mentees/{first_mentee}/requests",
                {"mentor_person_id": top["mentor_person_id"]},
            )
        assert requested is not None
        with participant(endpoints, seeded, top["mentor_person_id"]) as mentor:
            requested = mentor.post("matching", f"/v1/matches/{requested['match_id']}/accept")
        assert requested is not None
        report(f"the mentee asked their #1 mentor and the mentor accepted: match {requested['match_id']} is active")
        seeded.match_id = requested["match_id"]

        cohort_round: dict[str, Any] = coord.post("matching", f"/v1/programs/{seeded.program_id}/rounds")
        summary = cohort_round["report"]
        report(
            f"cohort round {cohort_round['round_id']}: {summary['proposal_count']} proposals for "
            f"{summary['mentee_count']} mentees, mean score {summary['mean_score'] or 0:.2f}, "
            f"{summary['unmatched_count']} unmatched ({summary['certificate']['statement']})"
        )
        cohort_round = coord.post("matching", f"/v1/rounds/{cohort_round['round_id']}/approve", {})
        seeded.round_id = cohort_round["round_id"]
        report("round approved: every proposal sent to its mentee and mentor")

        accepted = 0
        for proposal in cohort_round["proposals"][:accept_from_round]:
            for person in (proposal["mentee_person_id"], proposal["mentor_person_id"]):
                with participant(endpoints, seeded, person) as party:
                    try:
                        party.post("matching", f"/v1/matches/{proposal['match_id']}/accept")
                    except ServiceError as exc:  # e.g. the mentor's capacity filled meanwhile: show, go on
                        report(f"   could not accept {proposal['match_id']}: {exc.body}")
                        break
            else:
                accepted += 1
        report(f"{accepted} proposals accepted by both people: their check-ins are planned by scheduling")

        matches = list(coord.pages("matching", f"/v1/programs/{seeded.program_id}/matches"))
        by_state: dict[str, int] = {}
        for match in matches:
            by_state[match["state"]] = by_state.get(match["state"], 0) + 1
    return DemoOutcome(seeded, imported, requested, cohort_round, accepted, by_state)
