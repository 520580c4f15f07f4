"""A handler's after-commit actions (run_after_commit): run once the batch's transaction commits, never on rollback,
and a failing one neither fails nor redelivers the batch. Driven through ConsumerRunner.process, as tools do."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from structlog.testing import capture_logs

from shared.messaging.consumer import run_after_commit
from tests.messaging.support import ProbeEvent, create_messaging_schema, effect_counts, record_effect, runner

pytestmark = pytest.mark.integration


def _record(offset: int, event_id: str, **payload: object) -> ConsumerRecord[bytes, bytes]:
    headers = [("ce_id", event_id.encode()), ("ce_type", b"probe")]
    value = json.dumps(payload).encode()
    return ConsumerRecord("t.after-commit", 0, offset, 0, 0, b"k", value, None, 1, len(value), headers)


class _DeadLetters:
    """Stands in for the runner's dead-letter producer: what would have gone to `<topic>.dlq`."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send_and_wait(self, topic: str, value: bytes, key: bytes, headers: list[tuple[str, bytes]]) -> None:
        self.sent.append(dict(headers)["ce_id"].decode())


@pytest.fixture
async def schema(engine: AsyncEngine) -> AsyncEngine:
    await create_messaging_schema(engine)
    return engine


async def test_an_action_runs_once_its_batch_has_committed_and_not_for_a_rolled_back_event(
    schema: AsyncEngine,
) -> None:
    seen_by_action: dict[str, dict[str, int]] = {}

    async def handler(session: AsyncSession, event: ProbeEvent) -> None:
        async def after() -> None:  # what another connection sees when the action runs
            seen_by_action[event.id] = await effect_counts(schema)

        run_after_commit(session, after)
        await record_effect(session, event)

    consumer = runner(schema, "unused:9092", "t.after-commit", "g-after-commit", handler=handler, max_attempts=1)
    dead_letters = _DeadLetters()
    consumer._producer = dead_letters  # type: ignore[assignment]

    await consumer.process([_record(0, "first"), _record(1, "second")])
    assert seen_by_action == {"first": {"first": 1, "second": 1}, "second": {"first": 1, "second": 1}}, (
        "each action ran after the batch committed, seeing its rows from another connection"
    )

    seen_by_action.clear()
    # "bad" fails the batch: it is rolled back and redone one event at a time, where "bad" fails again.
    await consumer.process([_record(2, "third"), _record(3, "bad", explode=True)])
    assert dead_letters.sent == ["bad"]
    assert list(seen_by_action) == ["third"], "once for the event committed alone, never for the rolled-back ones"
    assert seen_by_action["third"]["third"] == 1


async def test_a_failing_action_is_logged_and_neither_fails_nor_redelivers_its_batch(schema: AsyncEngine) -> None:
    calls: list[str] = []

    async def handler(session: AsyncSession, event: ProbeEvent) -> None:
        async def after() -> Any:
            calls.append(event.id)
            raise ConnectionError("redis is down")

        run_after_commit(session, after)
        await record_effect(session, event)

    consumer = runner(schema, "unused:9092", "t.after-commit", "g-after-commit-fails", handler=handler)
    dead_letters = _DeadLetters()
    consumer._producer = dead_letters  # type: ignore[assignment]

    with capture_logs() as logs:
        await consumer.process([_record(0, "first"), _record(1, "second")])

    assert await effect_counts(schema) == {"first": 1, "second": 1}, "applied once: the batch was not redone"
    assert calls == ["first", "second"]
    assert dead_letters.sent == []
    failures = [entry for entry in logs if entry["event"] == "after-commit action failed"]
    assert [entry["error"] for entry in failures] == ["ConnectionError('redis is down')"] * 2
