"""Migration 0005's downgrade drops the erasure tombstones and the per-question survey answers, and upgrading again
does not bring them back (0006 already deleted the erased people's rows): without a tombstone a late event of an
erased person (a redelivery, a replay) would make feedback keep their data again. So the downgrade refuses while
either exists, unless the operator says in the environment that they mean it."""

from __future__ import annotations

import io
import uuid
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.feedback.bootstrap import DEFINITION
from shared.migrations import alembic_config
from tests.shared.test_migrations import alembic

pytestmark = pytest.mark.integration

OPT_IN = "MENTORLOOM_FEEDBACK_DOWNGRADE_DROPS_ERASURES"
TOMBSTONE = "INSERT INTO erasures (person_key, tenant_id, version) VALUES (:key, :tenant, 3)"
SURVEY_ANSWERS = (
    "INSERT INTO surveys (match_id, respondent_id, tenant_id, role, before_score, before_answers)"
    " VALUES (:match, :person, :tenant, 2, 4.0, '{\"confidence\": 4}')"
)
ANSWERLESS_SURVEY = (
    "INSERT INTO surveys (match_id, respondent_id, tenant_id, role, before_score)"
    " VALUES (:match, :person, :tenant, 2, 4.0)"
)


@pytest.fixture
def config(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.delenv(OPT_IN, raising=False)
    return alembic_config(DEFINITION.migrations_dir, database_url)


async def at_0005_with(engine: AsyncEngine, config: Config, *statements: str) -> None:
    await alembic(command.upgrade, config, "0005")
    async with engine.begin() as conn:
        for statement in statements:
            ids = {"key": uuid.uuid4(), "tenant": uuid.uuid4(), "match": uuid.uuid4(), "person": uuid.uuid4()}
            await conn.execute(text(statement), ids)


async def scalar(engine: AsyncEngine, query: str) -> Any:
    async with engine.connect() as conn:
        return await conn.scalar(text(query))


@pytest.mark.parametrize(
    ("kept", "named", "risk"),
    [
        ((TOMBSTONE, TOMBSTONE), "2 erasure tombstones", "re-create an erased person's data"),
        ((SURVEY_ANSWERS, ANSWERLESS_SURVEY), "1 survey with per-question answers", "lost for good"),
    ],
    ids=["tombstones", "survey answers"],
)
async def test_a_downgrade_below_0005_that_would_drop_erasures_or_survey_answers_is_refused_saying_how_to_insist(
    engine: AsyncEngine, config: Config, kept: tuple[str, ...], named: str, risk: str
) -> None:
    await at_0005_with(engine, config, *kept)

    with pytest.raises(CommandError) as refused:
        await alembic(command.downgrade, config, "0004")

    message = str(refused.value)
    assert named in message
    assert risk in message, "it says what dropping them costs"
    assert f"{OPT_IN}=1" in message
    assert await scalar(engine, "SELECT version_num FROM alembic_version") == "0005"
    assert await scalar(engine, "SELECT count(*) FROM erasures") + await scalar(
        engine, "SELECT count(*) FROM surveys WHERE before_answers IS NOT NULL"
    ) == sum(statement != ANSWERLESS_SURVEY for statement in kept)


async def test_a_downgrade_below_0005_drops_them_when_the_operator_opts_in(
    engine: AsyncEngine, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    await at_0005_with(engine, config, TOMBSTONE, SURVEY_ANSWERS)
    monkeypatch.setenv(OPT_IN, "1")

    await alembic(command.downgrade, config, "0004")

    assert await scalar(engine, "SELECT version_num FROM alembic_version") == "0004"
    assert await scalar(engine, "SELECT to_regclass('erasures')") is None
    assert await scalar(engine, "SELECT count(*) FROM surveys") == 1, "the scores stay"


async def test_a_downgrade_below_0005_with_nothing_to_lose_needs_no_opt_in(engine: AsyncEngine, config: Config) -> None:
    await at_0005_with(engine, config, ANSWERLESS_SURVEY)

    await alembic(command.downgrade, config, "0004")

    assert await scalar(engine, "SELECT version_num FROM alembic_version") == "0004"


def rendered_downgrade(config: Config) -> str:
    config.output_buffer = io.StringIO()
    command.downgrade(config, "0005:0004", sql=True)
    return config.output_buffer.getvalue()


def test_rendering_the_downgrade_as_sql_refuses_without_the_opt_in_since_it_cannot_count_what_it_drops(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(CommandError) as refused:
        rendered_downgrade(config)
    monkeypatch.setenv(OPT_IN, "1")
    script = rendered_downgrade(config)

    assert f"{OPT_IN}=1" in str(refused.value)
    assert "DROP TABLE erasures" in script
