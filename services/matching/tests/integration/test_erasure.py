"""Right to be forgotten in matching, on a real PostgreSQL and Redis: after ProfileErased no table, outbox row or
cached response holds the person's profile values, the explanations written from them, or the end reason they typed.
Their id stays on their matches (see on_profile_erased for why)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.matching.settings import MatchingSettings
from services.matching.tests.integration.conftest import START, Feeder, World, rows
from shared.events import samples
from shared.service import Runtime
from tests.erasure_scan import stored_anywhere, text_values

pytestmark = pytest.mark.integration

ERASED = "zqamara"
# The erased mentee's own values, none of which any other person of the world has.
PERSONAL: dict[str, Any] = {
    "display_name": "Zephyrine Quillfeather",
    "external_id": "hr-zq-4711",
    "department": "dept-zq-astronomy",
    "team": "team-zq-comets",
    "time_zone": "Pacific/Chatham",
    "skills": ("zqskillbookbinding",),
    "goals": {"tags": ("zqgoaltag",), "text": "zq goal words: I want to learn to lead"},
    "desired_outcomes": {"tags": (), "text": "zq outcome words: a calmer team"},
    "affinity_attributes": ("zq-affinity-first-generation",),
}
PRIVATE_REASON = "zq private: we never found a rhythm and I felt unheard"


def personal_values() -> list[str]:
    return text_values(f"{ERASED}@example.org", PERSONAL)


async def posted(client: httpx.AsyncClient, url: str, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await client.post(url, json=body or None, headers={**headers, "Idempotency-Key": uuid.uuid4().hex})
    assert response.status_code in (200, 201), response.text
    answer: dict[str, Any] = response.json()
    return answer


async def seeded(
    client: httpx.AsyncClient, settings: MatchingSettings, feed: Feeder, db: AsyncEngine
) -> tuple[World, list[str]]:
    """The erased mentee with an ended match (their private reason), an open request and a round's proposal; every
    POST with an Idempotency-Key, so its answer is kept. Returns the world and the explanations of their matches."""
    w = World()
    await feed(w.program(allow_mentor_network=True, max_mentors_per_mentee=3))
    # One shared interest with each mentor, so every explanation speaks of it.
    await feed(*w.mentee(ERASED, interests=("zqlichen",), **PERSONAL))
    for mentor in ("lukas", "nora", "omar"):
        await feed(*w.mentor(mentor, interests=("zqlichen",)))
    requests = f"/v1/programs/{w.program_id}/mentees/{w.id(ERASED)}/requests"
    mentee = w.as_person(settings, ERASED)
    ended = await posted(client, requests, mentee, mentor_person_id=str(w.id("lukas")))
    await posted(client, f"/v1/matches/{ended['match_id']}/accept", w.as_person(settings, "lukas"))
    await posted(
        client,
        f"/v1/matches/{ended['match_id']}/end",
        mentee,
        reason_category="not_a_good_fit",
        private_reason=PRIVATE_REASON,
    )
    await posted(client, requests, mentee, mentor_person_id=str(w.id("nora")))
    await posted(client, f"/v1/programs/{w.program_id}/rounds", w.as_coordinator(settings))
    explanations = [
        r[0] for r in await rows(db, "SELECT explanation FROM matches WHERE mentee_person_id = :p", p=w.id(ERASED))
    ]
    assert len(explanations) == 3
    assert all("zqlichen" in e for e in explanations), explanations
    return w, explanations


async def erase(feed: Feeder, w: World, version: int = 2) -> None:
    await feed(samples.profile_erased(tenant_id=w.tenant, person_id=w.id(ERASED), version=version, erased_at=START))


async def test_after_erasure_no_table_outbox_row_or_cached_response_holds_the_persons_data(
    client: httpx.AsyncClient, settings: MatchingSettings, feed: Feeder, runtime: Runtime
) -> None:
    w, explanations = await seeded(client, settings, feed, runtime.engine)
    values = [*personal_values(), *explanations, PRIVATE_REASON]
    before = await stored_anywhere(runtime.engine, runtime.redis, values)
    # The scan sees them where matching keeps them: the snapshot, the proposals waiting in the outbox, the answers
    # kept for Idempotency-Key retries, the private end reason.
    assert "people.snapshot" in before[PERSONAL["display_name"]]
    assert "outbox.value" in before[explanations[0]]
    assert any(place.startswith("redis:idem:matching:") for place in before[explanations[0]])
    assert before[PRIVATE_REASON] == ["matches.end_reason_private"]

    await erase(feed, w)

    assert await stored_anywhere(runtime.engine, runtime.redis, values) == {}


async def test_the_answers_kept_in_redis_are_forgotten_once_the_erasure_has_committed_not_inside_its_transaction(
    client: httpx.AsyncClient,
    settings: MatchingSettings,
    feed: Feeder,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    w, explanations = await seeded(client, settings, feed, runtime.engine)
    scan = runtime.redis.scan_iter
    seen_by_another_connection: list[dict[str, list[str]]] = []

    async def scanning_after_the_commit(*args: Any, **kwargs: Any) -> Any:
        # Inside the transaction, another connection would still see the snapshot (and its row locks held).
        seen_by_another_connection.append(await stored_anywhere(runtime.engine, None, [PERSONAL["display_name"]]))
        async for key in scan(*args, **kwargs):
            yield key

    monkeypatch.setattr(runtime.redis, "scan_iter", scanning_after_the_commit)
    await erase(feed, w)

    assert seen_by_another_connection == [{}], "the Redis clean-up ran once, after the erasure was committed"
    assert await stored_anywhere(runtime.engine, runtime.redis, [*personal_values(), *explanations]) == {}


async def test_an_erasure_delivered_again_or_of_a_stranger_changes_nothing_more(
    client: httpx.AsyncClient, settings: MatchingSettings, feed: Feeder, db: AsyncEngine
) -> None:
    w, _ = await seeded(client, settings, feed, db)
    await erase(feed, w)
    once = await rows(db, "SELECT t::text FROM matches AS t ORDER BY match_id")
    outbox = await rows(db, "SELECT id, value FROM outbox ORDER BY id")

    await erase(feed, w)
    await erase(feed, w, version=1)
    await feed(samples.profile_erased(tenant_id=w.tenant, person_id=uuid.uuid4(), version=1, erased_at=START))

    assert await rows(db, "SELECT t::text FROM matches AS t ORDER BY match_id") == once
    assert await rows(db, "SELECT id, value FROM outbox ORDER BY id") == outbox


async def test_a_late_snapshot_brings_nothing_back_and_the_ended_pair_is_still_never_proposed_again(
    client: httpx.AsyncClient, settings: MatchingSettings, feed: Feeder, runtime: Runtime
) -> None:
    w, _ = await seeded(client, settings, feed, runtime.engine)
    await erase(feed, w)
    await feed(w.person(ERASED, version=1, interests=("zqlichen",), **PERSONAL), w.enrol(ERASED, "mentee"))

    assert await stored_anywhere(runtime.engine, runtime.redis, personal_values()) == {}
    # The id kept on the ended match is what still keeps the pair apart.
    (kept,) = await rows(
        runtime.engine,
        "SELECT count(*) FROM matches WHERE mentee_person_id = :p AND mentor_person_id = :m AND state = 'ended'",
        p=w.id(ERASED),
        m=w.id("lukas"),
    )
    assert kept[0] == 1


async def test_a_late_enrolment_of_an_erased_person_is_not_applied_and_the_pool_does_not_wait_for_them(
    client: httpx.AsyncClient, settings: MatchingSettings, feed: Feeder, db: AsyncEngine
) -> None:
    w, _ = await seeded(client, settings, feed, db)
    await erase(feed, w)

    # A replay from the beginning, or a redelivery: the person's enrolment comes again after their erasure.
    await feed(w.enrol(ERASED, "mentee"), w.enrol(ERASED, "mentee", version=2))

    assert await rows(db, "SELECT enrollment_id FROM enrolments WHERE person_id = :p", p=w.id(ERASED)) == []
    pool = await client.get(f"/v1/programs/{w.program_id}/pool", headers=w.as_coordinator(settings))
    assert pool.status_code == 200, pool.text
    assert pool.json()["mentees"]["without_profile"] == 0


async def test_an_erasure_is_applied_when_redis_fails_to_forget_the_cached_answers_and_its_redelivery_forgets_them(
    client: httpx.AsyncClient,
    settings: MatchingSettings,
    feed: Feeder,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    w, explanations = await seeded(client, settings, feed, runtime.engine)

    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise RedisConnectionError("Redis is not reachable")

    monkeypatch.setattr(runtime.redis, "scan_iter", unreachable)

    # A failing handler would be retried and then dead-lettered: the erasure must be applied all the same.
    await erase(feed, w)

    assert await stored_anywhere(runtime.engine, None, [*personal_values(), *explanations, PRIVATE_REASON]) == {}
    monkeypatch.undo()
    assert await stored_anywhere(runtime.engine, runtime.redis, explanations), "Redis still keeps the answers"

    # The erasure delivered again (the consumer redelivers, or an operator replays it) is the way to try again.
    await erase(feed, w)

    assert await stored_anywhere(runtime.engine, runtime.redis, [*personal_values(), *explanations]) == {}
