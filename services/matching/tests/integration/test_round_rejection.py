"""A coordinator reading a round report rejects one proposal by itself before approving the rest."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from services.matching.settings import MatchingSettings
from services.matching.tests.integration.conftest import Feeder, outbox_types
from services.matching.tests.integration.test_lifecycle_api import DECLINED, seeded


async def test_a_coordinator_rejects_one_round_proposal_unsent_and_the_approval_counts_it_as_theirs(
    client, settings: MatchingSettings, feed: Feeder, db: AsyncEngine
) -> None:
    w = await seeded(feed)
    coordinator = w.as_coordinator(settings)
    solved = (await client.post(f"/v1/programs/{w.program_id}/rounds", headers=coordinator)).json()
    rejected, kept = solved["proposals"]

    response = await client.post(f"/v1/matches/{rejected['match_id']}/decline", headers=coordinator)
    assert response.status_code == 200, response.text
    assert (response.json()["state"], response.json()["decline_reason"]) == ("declined", "rejected_by_coordinator")
    assert DECLINED not in await outbox_types(db), "never sent, so nobody downstream hears of it"

    approved = (await client.post(f"/v1/rounds/{solved['round_id']}/approve", json={}, headers=coordinator)).json()
    approval = approved["report"]["approval"]
    assert (approval["sent_count"], approval["skipped_count"], approval["dropped_by_coordinator_count"]) == (1, 0, 1)
    assert approval["dropped_by_coordinator"] == [rejected["mentee_person_id"]]
    states = {p["match_id"]: p["state"] for p in approved["proposals"]}
    assert states == {rejected["match_id"]: "declined", kept["match_id"]: "proposed"}
