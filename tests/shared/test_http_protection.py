"""Idempotency-Key replay and per-token rate limits against a real Redis, shared by two app replicas."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import Depends, FastAPI, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from structlog.testing import capture_logs

import shared.http_protection as http_protection
from shared.auth import CurrentPrincipal, Principal, TokenVerifier, install_auth, mint_dev_token
from shared.http_protection import declare_idempotency_key, install_http_protection
from shared.settings import ServiceSettings
from tests.shared.conftest import dev_settings

pytestmark = pytest.mark.integration


class ItemIn(BaseModel):
    name: str


@dataclass
class Replica:
    """One running instance of a service: its app, a client for it, and what its handlers did."""

    app: FastAPI
    http: httpx.AsyncClient
    created: list[str] = field(default_factory=list)
    slow_entered: asyncio.Event = field(default_factory=asyncio.Event)
    slow_release: asyncio.Event = field(default_factory=asyncio.Event)


def build_app(settings: ServiceSettings, replica: dict[str, Any]) -> FastAPI:
    app = FastAPI()
    install_auth(app, settings)
    install_http_protection(app, settings)
    idempotent = [Depends(declare_idempotency_key)]

    @app.post("/items", status_code=201, dependencies=idempotent)
    async def create_item(item: ItemIn, principal: CurrentPrincipal, response: Response) -> dict[str, str]:
        item_id = str(uuid.uuid4())
        replica["created"].append(item.name)
        response.headers["Location"] = f"/items/{item_id}"
        response.headers["X-Request-Only"] = "not replayed"
        return {"id": item_id, "name": item.name, "owner": principal.subject}

    @app.post("/slow", status_code=201)
    async def slow(principal: CurrentPrincipal) -> dict[str, str]:
        replica["slow_entered"].set()
        await replica["slow_release"].wait()
        replica["created"].append("slow")
        return {"id": str(uuid.uuid4())}

    @app.post("/broken")
    async def broken(principal: CurrentPrincipal) -> JSONResponse:
        replica["created"].append("broken")
        return JSONResponse({"detail": "database gone"}, status_code=500)

    @app.post("/crash")
    async def crash(principal: CurrentPrincipal) -> None:
        replica["created"].append("crash")
        raise RuntimeError("handler bug")

    @app.post("/conflict")
    async def conflict(principal: CurrentPrincipal) -> JSONResponse:
        replica["created"].append("conflict")
        return JSONResponse({"detail": "stale version"}, status_code=409)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/items")
    async def list_items(principal: CurrentPrincipal) -> list[str]:
        created: list[str] = replica["created"]
        return created

    return app


@pytest.fixture
def protected_settings(redis_url: str) -> ServiceSettings:
    return dev_settings(redis_url=redis_url, rate_limit_per_minute=1000, idempotency_ttl_seconds=600)


async def _replica(settings: ServiceSettings) -> Replica:
    state: dict[str, Any] = {"created": [], "slow_entered": asyncio.Event(), "slow_release": asyncio.Event()}
    app = build_app(settings, state)
    # raise_app_exceptions=False: a crashing handler must reach us as the 500 a real server would send.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    http = httpx.AsyncClient(transport=transport, base_url="http://testserver")
    replica = Replica(app, http, state["created"], state["slow_entered"], state["slow_release"])
    return replica


@pytest.fixture
async def replicas(protected_settings: ServiceSettings) -> AsyncIterator[tuple[Replica, Replica]]:
    first, second = await _replica(protected_settings), await _replica(protected_settings)
    try:
        yield first, second
    finally:
        for replica in (first, second):
            await replica.http.aclose()
            await replica.app.state.http_protection_redis.aclose()


@pytest.fixture
def token(protected_settings: ServiceSettings, tenant: uuid.UUID) -> str:
    return mint_dev_token(protected_settings, "user-a", tenant, ["coordinator"])


def auth(token: str, key: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


# --- Idempotency-Key ---------------------------------------------------------------------------------------------


async def test_a_retried_post_replays_the_first_response_without_running_again(
    replicas: tuple[Replica, Replica], token: str
) -> None:
    replica, _ = replicas
    first = await replica.http.post("/items", json={"name": "x"}, headers=auth(token, "key-1"))
    retry = await replica.http.post("/items", json={"name": "x"}, headers=auth(token, "key-1"))

    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry.headers["location"] == first.headers["location"]
    assert retry.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert "x-request-only" not in retry.headers
    assert replica.created == ["x"]


async def test_a_key_used_on_one_replica_is_replayed_by_another(replicas: tuple[Replica, Replica], token: str) -> None:
    first_replica, second_replica = replicas
    first = await first_replica.http.post("/items", json={"name": "x"}, headers=auth(token, "shared-key"))
    retry = await second_replica.http.post("/items", json={"name": "x"}, headers=auth(token, "shared-key"))

    assert retry.json() == first.json()
    assert retry.headers["idempotent-replayed"] == "true"
    assert second_replica.created == []


async def test_the_response_is_kept_under_service_tenant_subject_and_key_for_the_configured_time(
    replicas: tuple[Replica, Replica], token: str, redis_url: str, tenant: uuid.UUID
) -> None:
    replica, _ = replicas
    await replica.http.post("/items", json={"name": "x"}, headers=auth(token, "ttl-key"))

    client: Any = aioredis.from_url(redis_url)
    try:
        ttl = await client.ttl(f"idem:testsvc:{tenant}:user-a:ttl-key")
    finally:
        await client.aclose()
    assert 0 < ttl <= 600


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Any]:
    client: Any = aioredis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


def record_naming(person: str) -> bytes:
    return http_protection.StoredResponse("f", 201, [], f'{{"person_id": "{person}"}}'.encode()).dumps()


#: The tenant of the records these tests keep by hand.
TENANT = uuid.UUID("0b8f8c52-61f4-4c0e-9d8e-0f4f5d3a2c11")


async def forget_and_look(
    redis: Any, person: str, logged: str, tenant: uuid.UUID = TENANT
) -> tuple[int | None, list[str], list[str]]:
    """forget_stored_responses of "testsvc" in `tenant`: how many it forgot, the keys left (of every tenant), the
    keys logged as `logged`."""
    with capture_logs() as logs:
        forgotten = await http_protection.forget_stored_responses(redis, "testsvc", tenant, person)
    left = sorted(key.decode() for key in await redis.keys("idem:testsvc:*"))
    return forgotten, left, [entry["key"] for entry in logs if entry["event"] == logged]


async def test_forgetting_an_erased_persons_responses_deletes_a_record_it_cannot_read_and_goes_on(redis: Any) -> None:
    person = str(uuid.uuid4())
    await redis.set(f"idem:testsvc:{TENANT}:u:broken", b"{not json")
    await redis.set(f"idem:testsvc:{TENANT}:u:naming", record_naming(person))

    forgotten, left, logged = await forget_and_look(redis, person, "stored_response_unreadable_deleted")

    assert forgotten == 2, "the record naming the person and the unreadable one, which may name them too"
    assert left == []
    assert logged == [f"idem:testsvc:{TENANT}:u:broken"]


async def test_forgetting_an_erased_persons_responses_deletes_those_kept_under_their_own_subject(redis: Any) -> None:
    person = str(uuid.uuid4())
    # Their own answer (a calendar feed's URL, say) names them only in its key, when their token's subject is their id.
    own = http_protection.StoredResponse("f", 201, [], b'{"url": "https://example.org/feeds/secret"}').dumps()
    await redis.set(f"idem:testsvc:{TENANT}:{person}:k1", own)
    await redis.set(f"idem:testsvc:{TENANT}:someone-else:k2", own)

    forgotten, left, _ = await forget_and_look(redis, person, "")

    assert forgotten == 1
    assert left == [f"idem:testsvc:{TENANT}:someone-else:k2"]


async def test_forgetting_an_erased_persons_responses_deletes_their_own_though_neither_key_nor_body_names_them(
    replicas: tuple[Replica, Replica], protected_settings: ServiceSettings, tenant: uuid.UUID, redis: Any
) -> None:
    person, other = uuid.uuid4(), uuid.uuid4()
    # An identity provider's subjects, not person ids: the person's answer (what they wrote) names them nowhere.
    own = mint_dev_token(protected_settings, "idp-subject-17", tenant, ["participant"], person_id=person)
    others = mint_dev_token(protected_settings, "idp-subject-18", tenant, ["participant"], person_id=other)
    replica, _ = replicas
    assert (await replica.http.post("/items", json={"name": "my words"}, headers=auth(own, "k1"))).status_code == 201
    assert (await replica.http.post("/items", json={"name": "theirs"}, headers=auth(others, "k2"))).status_code == 201

    forgotten, left, _ = await forget_and_look(redis, str(person), "", tenant)

    assert forgotten == 1
    assert left == [f"idem:testsvc:{tenant}:idp-subject-18:k2"]


async def test_forgetting_an_erased_persons_responses_in_one_tenant_leaves_another_tenants_naming_the_same_id(
    redis: Any,
) -> None:
    """Person ids are not tenants' secrets: another tenant's answers that name the same id (in the body, as the
    caller's person, in the key's subject) or cannot be read belong to that tenant and are not this erasure's."""
    person = str(uuid.uuid4())
    ours, theirs = uuid.uuid4(), uuid.uuid4()
    callers_own = http_protection.StoredResponse("f", 201, [], b'{"name": "my words"}', person=person).dumps()
    for tenant in (ours, theirs):
        await redis.set(f"idem:testsvc:{tenant}:u:body", record_naming(person))
        await redis.set(f"idem:testsvc:{tenant}:idp-subject:person", callers_own)
        await redis.set(f"idem:testsvc:{tenant}:{person}:subject", record_naming("someone-else"))
        await redis.set(f"idem:testsvc:{tenant}:u:broken", b"{not json")

    forgotten, left, _ = await forget_and_look(redis, person, "", ours)

    assert forgotten == 4
    assert left == sorted(
        f"idem:testsvc:{theirs}:{rest}" for rest in ("u:body", "idp-subject:person", f"{person}:subject", "u:broken")
    )


def as_written_before_the_person_was_kept(raw: bytes) -> bytes:
    """A record as the middleware wrote it before a4c6149: the same fields without ``person``."""
    record = json.loads(raw)
    del record["person"]
    return json.dumps(record).encode()


async def test_a_response_kept_before_records_held_the_callers_person_still_replays(
    replicas: tuple[Replica, Replica], protected_settings: ServiceSettings, tenant: uuid.UUID, redis: Any
) -> None:
    person = uuid.uuid4()
    token = mint_dev_token(protected_settings, "idp-subject-19", tenant, ["participant"], person_id=person)
    replica, other_replica = replicas
    first = await replica.http.post("/items", json={"name": "x"}, headers=auth(token, "old-key"))
    key = f"idem:testsvc:{tenant}:idp-subject-19:old-key"
    await redis.set(key, as_written_before_the_person_was_kept(await redis.get(key)), keepttl=True)

    retry = await other_replica.http.post("/items", json={"name": "x"}, headers=auth(token, "old-key"))
    reused = await other_replica.http.post("/items", json={"name": "y"}, headers=auth(token, "old-key"))

    assert (retry.status_code, retry.json(), retry.headers["idempotent-replayed"]) == (201, first.json(), "true")
    assert reused.status_code == 422, "the old record's fingerprint still guards its key"
    assert other_replica.created == []


async def test_forgetting_an_erased_persons_responses_finds_a_record_kept_before_they_held_the_person_by_its_body(
    redis: Any,
) -> None:
    person = str(uuid.uuid4())
    await redis.set(f"idem:testsvc:{TENANT}:u:naming", as_written_before_the_person_was_kept(record_naming(person)))
    await redis.set(
        f"idem:testsvc:{TENANT}:u:other", as_written_before_the_person_was_kept(record_naming("someone-else"))
    )

    forgotten, left, unreadable = await forget_and_look(redis, person, "stored_response_unreadable_deleted")

    assert (forgotten, left, unreadable) == (1, [f"idem:testsvc:{TENANT}:u:other"], [])


async def test_forgetting_an_erased_persons_responses_skips_a_key_of_another_redis_type_and_goes_on(
    redis: Any,
) -> None:
    person = str(uuid.uuid4())
    # A hash under the service's prefix: GET on it fails with WRONGTYPE, which ended the whole walk.
    await redis.hset(f"idem:testsvc:{TENANT}:u:a-hash", mapping={"person_id": "someone else"})
    for number in range(20):
        await redis.set(f"idem:testsvc:{TENANT}:u:naming-{number}", record_naming(person))

    forgotten, left, logged = await forget_and_look(redis, person, "stored_response_of_another_type_skipped")

    assert forgotten == 20, "every record naming the person, wherever the hash came in the walk"
    assert left == [f"idem:testsvc:{TENANT}:u:a-hash"], "a key this module did not write is left alone"
    assert logged == [f"idem:testsvc:{TENANT}:u:a-hash"]


def _changed(**changes: Any) -> Callable[[dict[str, Any]], bytes]:
    """The kept record with `changes` to its fields (None removes one)."""

    def corrupt(record: dict[str, Any]) -> bytes:
        changed = {**record, **changes}
        return json.dumps({name: value for name, value in changed.items() if value is not None}).encode()

    return corrupt


#: How a kept record (its JSON as the middleware wrote it) may turn unreadable, each otherwise a replay of its answer.
UNREADABLE_RECORDS: dict[str, Callable[[dict[str, Any]], bytes]] = {
    "bad JSON": lambda record: json.dumps(record).encode()[:-5],
    "not UTF-8": lambda record: b"\xff\xfe" + json.dumps(record).encode(),
    "bad base64": _changed(body="not base64!"),
    "a list, not an object": lambda record: json.dumps(list(record.values())).encode(),
    "no fingerprint": _changed(fingerprint=None),
    "no status": _changed(status=None),
    "a status that is no number": _changed(status="two hundred"),
    "a status no HTTP answer has": _changed(status=2001),
    "headers that are not pairs": _changed(headers=[["content-type"]]),
    "a header value that is not text": _changed(headers=[["content-type", 7]]),
    "a header no HTTP answer can carry": _changed(headers=[["content-type", "caf\u00e9 \u2615"]]),
    "a person that is no text": _changed(person=["someone"]),
}


@pytest.mark.parametrize("corrupt", UNREADABLE_RECORDS.values(), ids=UNREADABLE_RECORDS.keys())
async def test_a_retry_whose_kept_answer_cannot_be_read_is_refused_with_a_conflict_not_run_again_nor_a_server_error(
    replicas: tuple[Replica, Replica],
    token: str,
    tenant: uuid.UUID,
    redis: Any,
    corrupt: Callable[[dict[str, Any]], bytes],
) -> None:
    """The kept answer was corrupted, or written by a broken replica, after the first request ran: running it again
    could repeat its effect, so the retry is told to use a new key, and the record stays to refuse later retries."""
    replica, other_replica = replicas
    first = await replica.http.post("/items", json={"name": "x"}, headers=auth(token, "corrupted"))
    key = f"idem:testsvc:{tenant}:user-a:corrupted"
    raw = corrupt(json.loads(await redis.get(key)))
    await redis.set(key, raw, keepttl=True)

    with capture_logs() as logs:
        retry = await replica.http.post("/items", json={"name": "x"}, headers=auth(token, "corrupted"))
    again = await other_replica.http.post("/items", json={"name": "x"}, headers=auth(token, "corrupted"))
    fresh = await replica.http.post("/items", json={"name": "x"}, headers=auth(token, "a-new-key"))

    assert first.status_code == 201
    assert (retry.status_code, again.status_code) == (409, 409), retry.text
    assert retry.json()["detail"]["error"] == "idempotency_key_unreadable"
    assert "new key" in retry.json()["detail"]["error_description"]
    assert [entry["key"] for entry in logs if entry["event"] == "stored_response_unreadable_refused"] == [key]
    assert await redis.get(key) == raw
    assert (replica.created, other_replica.created) == (["x", "x"], []), "the first request and the new key's"
    assert fresh.status_code == 201


async def test_the_same_key_with_a_different_body_is_refused_and_not_run(
    replicas: tuple[Replica, Replica], token: str
) -> None:
    replica, _ = replicas
    await replica.http.post("/items", json={"name": "x"}, headers=auth(token, "key-2"))
    reuse = await replica.http.post("/items", json={"name": "y"}, headers=auth(token, "key-2"))

    assert reuse.status_code == 422
    assert reuse.json()["detail"]["error"] == "idempotency_key_reused"
    assert replica.created == ["x"]


async def test_the_same_key_on_another_endpoint_is_refused(replicas: tuple[Replica, Replica], token: str) -> None:
    replica, _ = replicas
    await replica.http.post("/items", json={"name": "x"}, headers=auth(token, "key-3"))
    reuse = await replica.http.post("/conflict", json={"name": "x"}, headers=auth(token, "key-3"))

    assert reuse.status_code == 422


async def test_a_retry_while_the_first_request_still_runs_gets_a_conflict(
    replicas: tuple[Replica, Replica], token: str
) -> None:
    first_replica, second_replica = replicas
    second_replica.slow_release.set()  # were the second replica to run the handler too, it would finish, not hang
    in_flight = asyncio.create_task(first_replica.http.post("/slow", headers=auth(token, "slow-key")))
    await first_replica.slow_entered.wait()

    concurrent = await second_replica.http.post("/slow", headers=auth(token, "slow-key"))
    first_replica.slow_release.set()
    first = await in_flight
    after = await second_replica.http.post("/slow", headers=auth(token, "slow-key"))

    assert concurrent.status_code == 409
    assert concurrent.json()["detail"]["error"] == "idempotency_key_in_use"
    assert first.status_code == 201
    assert after.status_code == 201
    assert after.json() == first.json()
    assert first_replica.created == ["slow"]
    assert second_replica.created == []


async def test_keys_of_different_callers_never_meet(
    replicas: tuple[Replica, Replica], token: str, protected_settings: ServiceSettings, tenant: uuid.UUID
) -> None:
    replica, _ = replicas
    other = mint_dev_token(protected_settings, "user-b", tenant, ["coordinator"])

    mine = await replica.http.post("/items", json={"name": "x"}, headers=auth(token, "common"))
    theirs = await replica.http.post("/items", json={"name": "x"}, headers=auth(other, "common"))

    assert theirs.status_code == 201
    assert "idempotent-replayed" not in theirs.headers
    assert theirs.json()["owner"] == "user-b" != mine.json()["owner"]


async def test_the_same_subject_and_key_in_another_tenant_never_meet(
    replicas: tuple[Replica, Replica], token: str, protected_settings: ServiceSettings
) -> None:
    """Subjects are unique per identity provider, not across tenants: another tenant's "user-a" retrying with the
    same key and body must not be handed this tenant's stored response."""
    replica, _ = replicas
    elsewhere = mint_dev_token(protected_settings, "user-a", uuid.uuid4(), ["coordinator"])

    mine = await replica.http.post("/items", json={"name": "x"}, headers=auth(token, "common"))
    theirs = await replica.http.post("/items", json={"name": "x"}, headers=auth(elsewhere, "common"))

    assert theirs.status_code == 201, theirs.text
    assert "idempotent-replayed" not in theirs.headers
    assert theirs.json()["id"] != mine.json()["id"]
    assert replica.created == ["x", "x"]


async def test_a_server_error_is_not_stored_so_the_retry_runs_again(
    replicas: tuple[Replica, Replica], token: str
) -> None:
    replica, _ = replicas
    first = await replica.http.post("/broken", headers=auth(token, "key-5xx"))
    retry = await replica.http.post("/broken", headers=auth(token, "key-5xx"))

    assert first.status_code == retry.status_code == 500
    assert replica.created == ["broken", "broken"]


async def test_a_crashed_request_frees_its_key_for_the_retry(replicas: tuple[Replica, Replica], token: str) -> None:
    replica, _ = replicas
    first = await replica.http.post("/crash", headers=auth(token, "key-crash"))
    retry = await replica.http.post("/crash", headers=auth(token, "key-crash"))

    assert first.status_code == retry.status_code == 500
    assert replica.created == ["crash", "crash"]


async def test_a_client_error_is_stored_and_replayed(replicas: tuple[Replica, Replica], token: str) -> None:
    replica, _ = replicas
    first = await replica.http.post("/conflict", headers=auth(token, "key-409"))
    retry = await replica.http.post("/conflict", headers=auth(token, "key-409"))

    assert first.status_code == retry.status_code == 409
    assert retry.headers["idempotent-replayed"] == "true"
    assert replica.created == ["conflict"]


@pytest.mark.parametrize("key", ["", "x" * 256, "with space", "tab\there"])
async def test_a_malformed_key_is_a_bad_request(replicas: tuple[Replica, Replica], token: str, key: str) -> None:
    replica, _ = replicas
    response = await replica.http.post("/items", json={"name": "x"}, headers=auth(token, key))

    assert response.status_code == 400
    assert response.json()["detail"]["error"] == "invalid_idempotency_key"
    assert replica.created == []


async def test_a_key_of_255_characters_is_accepted(replicas: tuple[Replica, Replica], token: str) -> None:
    replica, _ = replicas
    response = await replica.http.post("/items", json={"name": "x"}, headers=auth(token, "k" * 255))

    assert response.status_code == 201


async def test_posts_without_a_key_are_never_replayed(replicas: tuple[Replica, Replica], token: str) -> None:
    replica, _ = replicas
    await replica.http.post("/items", json={"name": "x"}, headers=auth(token))
    await replica.http.post("/items", json={"name": "x"}, headers=auth(token))

    assert replica.created == ["x", "x"]


async def test_a_large_request_body_is_passed_to_the_endpoint_intact(
    replicas: tuple[Replica, Replica], token: str
) -> None:
    replica, _ = replicas
    name = "n" * (3 * 1024 * 1024)  # beyond the in-memory spool: the body goes through a temporary file
    response = await replica.http.post("/items", json={"name": name}, headers=auth(token, "big"))

    assert response.status_code == 201
    assert replica.created == [name]


async def test_the_openapi_document_lists_the_idempotency_key_header(replicas: tuple[Replica, Replica]) -> None:
    replica, _ = replicas
    document = (await replica.http.get("/openapi.json")).json()

    parameters = document["paths"]["/items"]["post"]["parameters"]
    assert [(p["name"], p["in"]) for p in parameters] == [("Idempotency-Key", "header")]


# --- rate limit --------------------------------------------------------------------------------------------------


@pytest.fixture
async def limited_replicas(redis_url: str, frozen_clock: None) -> AsyncIterator[tuple[Replica, Replica]]:
    settings = dev_settings(redis_url=redis_url, rate_limit_per_minute=3)
    first, second = await _replica(settings), await _replica(settings)
    try:
        yield first, second
    finally:
        for replica in (first, second):
            await replica.http.aclose()
            await replica.app.state.http_protection_redis.aclose()


async def test_a_token_past_its_limit_is_told_to_retry_after_the_window(
    limited_replicas: tuple[Replica, Replica], token: str
) -> None:
    replica, _ = limited_replicas
    allowed = [await replica.http.get("/items", headers=auth(token)) for _ in range(3)]
    refused = await replica.http.get("/items", headers=auth(token))

    assert [r.status_code for r in allowed] == [200, 200, 200]
    assert [r.headers["ratelimit-remaining"] for r in allowed] == ["2", "1", "0"]
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "45"
    assert refused.headers["ratelimit-limit"] == "3"
    assert refused.headers["ratelimit-remaining"] == "0"
    assert refused.headers["ratelimit-reset"] == "45"
    assert refused.json()["detail"]["error"] == "rate_limited"


async def test_replicas_share_one_budget_per_token(limited_replicas: tuple[Replica, Replica], token: str) -> None:
    first, second = limited_replicas
    statuses = [
        (await (first if n % 2 else second).http.get("/items", headers=auth(token))).status_code for n in range(4)
    ]

    assert statuses == [200, 200, 200, 429]


async def test_another_token_keeps_its_own_budget(
    limited_replicas: tuple[Replica, Replica], token: str, tenant: uuid.UUID
) -> None:
    replica, _ = limited_replicas
    for _ in range(4):
        await replica.http.get("/items", headers=auth(token))
    other = mint_dev_token(dev_settings(), "user-b", tenant, ["participant"])

    assert (await replica.http.get("/items", headers=auth(other))).status_code == 200


async def test_the_same_subject_in_another_tenant_keeps_its_own_budget(
    limited_replicas: tuple[Replica, Replica], token: str
) -> None:
    replica, _ = limited_replicas
    for _ in range(4):
        await replica.http.get("/items", headers=auth(token))
    elsewhere = mint_dev_token(dev_settings(), "user-a", uuid.uuid4(), ["coordinator"])

    assert (await replica.http.get("/items", headers=auth(elsewhere))).status_code == 200


async def test_callers_without_a_valid_token_share_the_budget_of_their_address(
    limited_replicas: tuple[Replica, Replica], token: str
) -> None:
    replica, _ = limited_replicas
    statuses = [(await replica.http.get("/items", headers=auth("forged"))).status_code for _ in range(4)]

    assert statuses == [401, 401, 401, 429]
    assert (await replica.http.get("/items", headers=auth(token))).status_code == 200


async def test_health_probes_are_never_limited(limited_replicas: tuple[Replica, Replica]) -> None:
    replica, _ = limited_replicas
    statuses = {(await replica.http.get("/healthz")).status_code for _ in range(5)}

    assert statuses == {200}


# --- Redis unreachable -------------------------------------------------------------------------------------------


@pytest.fixture
async def replica_without_redis() -> AsyncIterator[Replica]:
    settings = dev_settings(redis_url="redis://127.0.0.1:1/0", rate_limit_per_minute=1)
    replica = await _replica(settings)
    try:
        yield replica
    finally:
        await replica.http.aclose()
        await replica.app.state.http_protection_redis.aclose()


async def test_without_redis_requests_are_served_unlimited_and_the_outage_is_logged(
    replica_without_redis: Replica, token: str
) -> None:
    with capture_logs() as logs:
        statuses = [(await replica_without_redis.http.get("/items", headers=auth(token))).status_code for _ in range(3)]

    assert statuses == [200, 200, 200]
    assert any(entry["event"] == "redis_unavailable_failing_open" for entry in logs)


async def test_without_redis_a_keyed_post_is_processed_normally_but_not_replayed(
    replica_without_redis: Replica, token: str
) -> None:
    first = await replica_without_redis.http.post("/items", json={"name": "x"}, headers=auth(token, "k"))
    retry = await replica_without_redis.http.post("/items", json={"name": "x"}, headers=auth(token, "k"))

    assert first.status_code == retry.status_code == 201
    assert "idempotent-replayed" not in retry.headers
    assert replica_without_redis.created == ["x", "x"]


async def test_idempotency_fails_open_on_its_own_when_redis_dies(token: str) -> None:
    settings = dev_settings(redis_url="redis://127.0.0.1:1/0")
    app = FastAPI()
    install_auth(app, settings)
    redis = http_protection.redis_client(settings)
    app.add_middleware(http_protection.IdempotencyMiddleware, redis=redis, service="s", ttl_seconds=60)
    calls: list[int] = []

    @app.post("/things", status_code=201)
    async def create(principal: CurrentPrincipal) -> dict[str, int]:
        calls.append(1)
        return {"n": len(calls)}

    transport = httpx.ASGITransport(app=app)
    with capture_logs() as logs:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            response = await http.post("/things", headers=auth(token, "k"))
    await redis.aclose()

    assert response.status_code == 201
    assert [entry["purpose"] for entry in logs if entry["event"] == "redis_unavailable_failing_open"] == ["idempotency"]


async def test_a_token_is_verified_once_per_request_though_middleware_and_endpoint_both_need_it(
    protected_settings: ServiceSettings, token: str
) -> None:
    verified: list[str] = []

    class CountingVerifier(TokenVerifier):
        async def verify(self, token: str) -> Principal:
            verified.append(token)
            return await super().verify(token)

    app = FastAPI()
    install_auth(app, protected_settings, CountingVerifier.from_settings(protected_settings))
    redis = install_http_protection(app, protected_settings)

    @app.post("/things", status_code=201)
    async def create(principal: CurrentPrincipal) -> dict[str, str]:
        return {"owner": principal.subject}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        response = await http.post("/things", headers=auth(token, "once"))
    await redis.aclose()

    assert response.status_code == 201
    assert verified == [token]
