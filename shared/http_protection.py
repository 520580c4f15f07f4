"""Idempotency-Key replay for POSTs and per-token rate limits, kept in Redis so every replica shares them.

    app = FastAPI()
    install_auth(app, settings)
    install_http_protection(app, settings)  # before install_observability, so metrics and traces see 429s
    install_observability(app, ...)

Both are plain ASGI middleware: they work for any service app and see the final response bytes.

**Redis down.** Redis only ever holds what can be lost (ARCHITECTURE.md), so an outage must not take the API down:
- rate limiting fails *open*: requests pass unlimited, and a warning is logged;
- idempotency falls back to processing the request normally without storing it (a retried POST then runs twice,
  exactly as without the header). Refusing instead would turn a cache outage into a write outage.
After a failure Redis is skipped for a few seconds (`RedisOutageGuard`), so an outage costs each request nothing
rather than a connection timeout, and the log gets one warning per pause instead of one per request.

**Idempotency** (after draft-ietf-httpapi-idempotency-key-header): a POST carrying ``Idempotency-Key`` from an
authenticated caller is fingerprinted (method, path, query, body). The first such request takes an in-flight lock
(``SET NX`` with expiry, via redis-py's `Lock`) and its response — 2xx or 4xx, never 5xx — is stored under
``idem:{service}:{tenant}:{subject}:{key}`` for ``idempotency_ttl_seconds``, with the caller's person id when their
token names one (so that an erasure finds the person's own answers: `forget_stored_responses`). A retry with the
same key and fingerprint gets the stored response with ``Idempotent-Replayed: true``; the same key with another
fingerprint gets 422; a retry while the first is still running gets 409, and so does one whose kept record cannot be
read (corrupted, or written by a broken replica: the first request may have taken effect, so it is not run again; the
caller is told to use a new key). Unauthenticated POSTs are passed through: the endpoint refuses them anyway.

**Rate limit**: a fixed one-minute window per token subject of a tenant (per client address without a valid token),
counted with ``INCR`` + ``EXPIRE`` in one MULTI/EXEC transaction. A fixed window lets a client spend up to twice the
limit across a window boundary; that is accepted for a per-minute abuse guard. Past the limit → 429 with
``Retry-After``; every response carries ``RateLimit-Limit``, ``RateLimit-Remaining``, ``RateLimit-Reset`` and
``RateLimit-Policy``.
The subject is taken from a *verified* token: an unverified ``sub`` would let anyone spend another user's quota.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import quote

import anyio
import redis.asyncio as aioredis
import structlog
from fastapi import FastAPI, Header
from redis.asyncio.lock import Lock
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth import Principal, principal_or_none
from shared.http_errors import ErrorBody, error_json
from shared.settings import ServiceSettings

log = structlog.get_logger(__name__)

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_IDEMPOTENCY_KEY_LENGTH = 255
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"  # visible ASCII: safe in headers, logs and Redis keys
IDEMPOTENT_METHODS = frozenset({"POST"})
# Headers replayed with a stored response; the rest (dates, rate limits, trace ids, cookies) belong to each request.
STORED_RESPONSE_HEADERS = frozenset({"content-type", "location", "content-location", "etag", "last-modified"})
# 408 and 429 say "try again": storing them would make the retry they ask for impossible.
UNSTORED_CLIENT_ERRORS = frozenset({408, 429})
MAX_STORED_BODY_BYTES = 1024 * 1024
SPOOL_IN_MEMORY_BYTES = 1024 * 1024  # larger request bodies (CSV uploads) spill to a temporary file
RECEIVE_CHUNK_BYTES = 64 * 1024
IN_FLIGHT_LOCK_SECONDS = 300.0  # outlives the slowest POST (a 100k-row import); a crashed request frees it then
RATE_WINDOW_SECONDS = 60
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})  # probes and scrapes must never be throttled
REDIS_TIMEOUT_SECONDS = 1.0
OUTAGE_PAUSE_SECONDS = 5.0

_idempotency_key_syntax = re.compile(IDEMPOTENCY_KEY_PATTERN)
_IDEMPOTENCY_KEY_DESCRIPTION = "Retrying with the same key replays the first response instead of repeating the request."

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=IDEMPOTENCY_KEY_HEADER,
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description=_IDEMPOTENCY_KEY_DESCRIPTION,
    ),
]


async def declare_idempotency_key(idempotency_key: IdempotencyKey = None) -> None:
    """Put ``Idempotency-Key`` into an endpoint's OpenAPI parameters (the middleware does the work)."""


def redis_client(settings: ServiceSettings) -> aioredis.Redis:
    """A client that gives up quickly: protection must add little latency, and nothing at all when Redis is gone."""
    return aioredis.from_url(
        settings.redis_url,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), retries=1),  # one retry covers a pooled connection that Redis closed
    )


@dataclass
class RedisOutageGuard:
    """Skips Redis for `pause_seconds` after a failure (a minimal circuit breaker)."""

    pause_seconds: float = OUTAGE_PAUSE_SECONDS
    _skip_until: float = field(default=0.0, init=False)

    def available(self) -> bool:
        return time.monotonic() >= self._skip_until

    def failed(self, purpose: str, error: Exception) -> None:
        if self.available():
            log.warning(
                "redis_unavailable_failing_open",
                purpose=purpose,
                error=f"{type(error).__name__}: {error}",
                pause_seconds=self.pause_seconds,
            )
        self._skip_until = time.monotonic() + self.pause_seconds


def _error_body(error: str, description: str) -> bytes:
    return json.dumps(error_json(error, description)).encode()


async def _send_response(
    send: Send, status: int, body: bytes, headers: Iterable[tuple[bytes, bytes]] = (), *, json_body: bool = True
) -> None:
    raw_headers = [(b"content-length", str(len(body)).encode()), *headers]
    if json_body:
        raw_headers.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


def _subject_part(subject: str) -> str:
    # Percent-encoding keeps ':' out of the subject, so "a:b" + key "c" and "a" + key "b:c" never share a Redis key.
    return quote(subject, safe="")


def _caller_part(principal: Principal) -> str:
    """The caller in a Redis key: tenant and subject, since a subject is unique per identity provider and two
    tenants' providers may issue the same one (a replay must never hand one tenant another's response)."""
    return f"{principal.tenant}:{_subject_part(principal.subject)}"


# --- rate limit ------------------------------------------------------------------------------------------------


class RateLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        redis: aioredis.Redis,
        service: str,
        limit_per_minute: int,
        guard: RedisOutageGuard | None = None,
        exempt_paths: frozenset[str] = EXEMPT_PATHS,
    ) -> None:
        self.app = app
        self.redis = redis
        self.service = service
        self.limit = limit_per_minute
        self.guard = guard or RedisOutageGuard()
        self.exempt_paths = exempt_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt_paths or not self.guard.available():
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        principal = await principal_or_none(connection)
        if principal is not None:
            caller = f"sub:{_caller_part(principal)}"
        else:
            caller = f"ip:{connection.client.host if connection.client else 'unknown'}"
        now = time.time()
        window = int(now // RATE_WINDOW_SECONDS)
        reset_seconds = max(1, math.ceil((window + 1) * RATE_WINDOW_SECONDS - now))
        key = f"rl:{self.service}:{caller}:{window}"
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, reset_seconds + 1)
                count, _ = await pipe.execute()
        except RedisError as exc:
            self.guard.failed("rate_limit", exc)
            await self.app(scope, receive, send)
            return
        headers = [
            (b"ratelimit-limit", str(self.limit).encode()),
            (b"ratelimit-remaining", str(max(0, self.limit - int(count))).encode()),
            (b"ratelimit-reset", str(reset_seconds).encode()),
            (b"ratelimit-policy", f"{self.limit};w={RATE_WINDOW_SECONDS}".encode()),
        ]
        if int(count) > self.limit:
            description = f"more than {self.limit} requests in a minute; retry in {reset_seconds} s"
            await _send_response(
                send,
                429,
                _error_body("rate_limited", description),
                [*headers, (b"retry-after", str(reset_seconds).encode())],
            )
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *headers]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


# --- idempotency -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredResponse:
    fingerprint: str
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    # The caller's person id, when their token names one: an erasure must find the person's own answers (a pulse
    # answer holds what they wrote), though neither the body nor a key made of the provider's subject names them.
    person: str | None = None

    def dumps(self) -> bytes:
        record = {
            "fingerprint": self.fingerprint,
            "status": self.status,
            "headers": self.headers,
            "body": base64.b64encode(self.body).decode(),
            "person": self.person,
        }
        return json.dumps(record).encode()

    @classmethod
    def loads(cls, raw: bytes | str) -> StoredResponse:
        """The record `dumps` wrote; `UnreadableStoredResponseError` for anything else (corrupted, or written by a broken
        replica), so that no caller replays or trusts half of one."""
        try:
            record = json.loads(raw)
            person = record.get("person")  # absent from records written before it was kept
            stored = cls(
                fingerprint=record["fingerprint"],
                status=record["status"],
                headers=[(_header_text(name), _header_text(value)) for name, value in record["headers"]],
                body=base64.b64decode(record["body"], validate=True),
                person=person,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:  # bad JSON, UTF-8, base64 or shape
            raise UnreadableStoredResponseError(f"{type(exc).__name__}: {exc}") from exc
        if not (
            isinstance(stored.fingerprint, str)
            and type(stored.status) is int
            and 100 <= stored.status <= 599
            and (person is None or isinstance(person, str))
        ):
            raise UnreadableStoredResponseError("a field of the wrong type or range")
        return stored


def _header_text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"a header holds {type(value).__name__}, not text")
    value.encode("latin-1")  # raises for what no response header can carry, before a replay would send it
    return value


class UnreadableStoredResponseError(ValueError):
    """A kept Idempotency-Key record that is not what `StoredResponse.dumps` writes."""


def _key_text(key: bytes | str) -> str:
    return key.decode(errors="replace") if isinstance(key, bytes) else key


def _names(record: StoredResponse, person: str) -> bool:
    return record.person == person or person.encode() in record.body


async def forget_stored_responses(redis: aioredis.Redis, service: str, tenant: uuid.UUID, needle: str) -> int | None:
    """Delete the service's responses kept in `tenant` for Idempotency-Key retries whose body or key holds `needle` (an
    erased person's id: an answer naming them may hold their name, e-mail or what was written from their profile, kept a
    day otherwise; the key holds the caller's token subject), or that answered `needle` itself (the caller's person id
    kept with the record); how many, or None when Redis failed. Only the erasure's tenant: another tenant's answers
    naming the same id are that tenant's business. Walks the service's records with SCAN, so it suits a rare act like an erasure, not a request path. A retry
    with a forgotten key runs the request again, as one arriving after the record expired would. Redis failing is
    logged, not raised: the caller's erasure stands, Redis holds only what may be lost, and the records expire with the
    idempotency TTL. A record that cannot be read is deleted and logged: it may name the person, and a replay of it
    would fail anyway. A key of another Redis type (not a string, so not written here) is logged and left alone, and the
    walk goes on."""
    wanted = needle.encode()
    forgotten = 0
    try:
        # The key is idem:{service}:{tenant}:{subject}:{key}; a tenant id (a UUID) holds no glob character.
        async for key in redis.scan_iter(match=f"idem:{service}:{tenant}:*", count=500):
            try:
                raw = await redis.get(key)
            except ResponseError as exc:
                if not str(exc).startswith("WRONGTYPE"):
                    raise
                # Not a record written here (those are strings): the walk goes on, the rest must still go.
                log.warning(
                    "stored_response_of_another_type_skipped", service=service, key=_key_text(key), error=str(exc)
                )
                continue
            if raw is None:
                continue
            try:
                # The key names the caller: the person's own answers, when their token's subject is their id.
                names_needle = wanted in _key_text(key).encode() or _names(StoredResponse.loads(raw), needle)
            except UnreadableStoredResponseError as exc:
                log.warning("stored_response_unreadable_deleted", service=service, key=_key_text(key), error=str(exc))
                names_needle = True
            if names_needle:
                forgotten += await redis.delete(key)
    except RedisError as exc:
        log.warning("stored_responses_not_forgotten", service=service, error=f"{type(exc).__name__}: {exc}")
        return None
    return forgotten


def _storable(status: int) -> bool:
    return (200 <= status < 300 or 400 <= status < 500) and status not in UNSTORED_CLIENT_ERRORS


class _SpooledBody:
    """The request body read once (to fingerprint it) and handed to the app again, in constant memory."""

    def __init__(self, spool: anyio.SpooledTemporaryFile[bytes], receive: Receive) -> None:
        self.spool = spool
        self.receive = receive
        self.replayed_all = False

    @classmethod
    async def read(cls, scope: Scope, receive: Receive, spool: anyio.SpooledTemporaryFile[bytes]) -> tuple[str, Any]:
        digest = hashlib.sha256()
        for part in (scope["method"], scope["path"], scope.get("query_string", b"").decode("latin-1")):
            digest.update(part.encode() + b"\n")
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return digest.hexdigest(), message
            chunk: bytes = message.get("body", b"")
            digest.update(chunk)
            await spool.write(chunk)
            if not message.get("more_body", False):
                await spool.seek(0)
                return digest.hexdigest(), None

    async def __call__(self) -> Message:
        if self.replayed_all:
            return await self.receive()  # after the body: disconnect notifications come from the server
        chunk = await self.spool.read(RECEIVE_CHUNK_BYTES)
        more = len(chunk) == RECEIVE_CHUNK_BYTES
        self.replayed_all = not more
        return {"type": "http.request", "body": chunk, "more_body": more}


class IdempotencyMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        redis: aioredis.Redis,
        service: str,
        ttl_seconds: int,
        guard: RedisOutageGuard | None = None,
        lock_seconds: float = IN_FLIGHT_LOCK_SECONDS,
        max_stored_body_bytes: int = MAX_STORED_BODY_BYTES,
    ) -> None:
        self.app = app
        self.redis = redis
        self.service = service
        self.ttl_seconds = ttl_seconds
        self.guard = guard or RedisOutageGuard()
        self.lock_seconds = lock_seconds
        self.max_stored_body_bytes = max_stored_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in IDEMPOTENT_METHODS:
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        key = connection.headers.get(IDEMPOTENCY_KEY_HEADER)
        if key is None:
            await self.app(scope, receive, send)
            return
        if not _idempotency_key_syntax.fullmatch(key):
            description = f"{IDEMPOTENCY_KEY_HEADER} must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} visible ASCII characters"
            await _send_response(send, 400, _error_body("invalid_idempotency_key", description))
            return
        principal = await principal_or_none(connection)
        if principal is None or not self.guard.available():
            await self.app(scope, receive, send)
            return
        caller = _caller_part(principal)
        record_key = f"idem:{self.service}:{caller}:{key}"
        lock_key = f"idem-lock:{self.service}:{caller}:{key}"
        async with anyio.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES) as spool:
            fingerprint, disconnect = await _SpooledBody.read(scope, receive, spool)
            if disconnect is not None:
                return  # the client left before sending its whole body: nothing to do or to answer
            body = _SpooledBody(spool, receive)
            person = str(principal.person_id) if principal.person_id is not None else None
            await self._handle(scope, body, send, key, fingerprint, record_key, lock_key, person=person)

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        key: str,
        fingerprint: str,
        record_key: str,
        lock_key: str,
        *,
        person: str | None,
    ) -> None:
        lock = Lock(self.redis, lock_key, timeout=self.lock_seconds, blocking=False, thread_local=False)
        locked = False
        try:
            stored = await self.redis.get(record_key)
            if stored is None:
                locked = await lock.acquire()
                if not locked:
                    # Another request with this key runs now, unless it finished between our two reads.
                    stored = await self.redis.get(record_key)
                    if stored is None:
                        description = f"a request with this {IDEMPOTENCY_KEY_HEADER} is still being processed"
                        await _send_response(send, 409, _error_body("idempotency_key_in_use", description))
                        return
                else:
                    stored = await self.redis.get(record_key)  # it may have finished just before we locked
                    if stored is not None:
                        await self._release(lock)
        except RedisError as exc:
            self.guard.failed("idempotency", exc)
            if locked:
                await self._release(lock)
            await self.app(scope, receive, send)
            return
        if stored is not None:
            try:
                record = StoredResponse.loads(stored)
            except UnreadableStoredResponseError as exc:
                # The first request may have run: running it again could repeat its effect, so the record stays (it
                # expires with the TTL) and refuses this key; a new key runs the request.
                log.warning("stored_response_unreadable_refused", key=record_key, error=str(exc))
                description = (
                    f"the answer kept for this {IDEMPOTENCY_KEY_HEADER} cannot be read, so whether the first request "
                    "took effect is unknown; check, then retry with a new key if it did not"
                )
                await _send_response(send, 409, _error_body("idempotency_key_unreadable", description))
                return
            await self._replay(send, record, fingerprint, key)
            return
        await self._run_and_store(scope, receive, send, fingerprint, record_key, lock, person=person)

    async def _replay(self, send: Send, stored: StoredResponse, fingerprint: str, key: str) -> None:
        if stored.fingerprint != fingerprint:
            description = f"this {IDEMPOTENCY_KEY_HEADER} was already used for a different request; use a new key"
            await _send_response(send, 422, _error_body("idempotency_key_reused", description))
            return
        headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in stored.headers]
        headers.append((REPLAYED_HEADER.lower().encode(), b"true"))
        await _send_response(send, stored.status, stored.body, headers, json_body=False)

    async def _run_and_store(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        fingerprint: str,
        record_key: str,
        lock: Lock,
        *,
        person: str | None,
    ) -> None:
        status = 0
        headers: list[tuple[str, str]] = []
        chunks: list[bytes] = []
        size = 0
        storable = False
        finished = False

        async def finish() -> None:
            nonlocal finished
            finished = True
            try:
                if storable:
                    record = StoredResponse(fingerprint, status, headers, b"".join(chunks), person)
                    await self.redis.set(record_key, record.dumps(), ex=self.ttl_seconds)
            except RedisError as exc:
                self.guard.failed("idempotency", exc)
            await self._release(lock)

        async def capture(message: Message) -> None:
            nonlocal status, headers, size, storable
            if message["type"] == "http.response.start":
                status = message["status"]
                storable = _storable(status)
                headers = [
                    (name.decode("latin-1").lower(), value.decode("latin-1"))
                    for name, value in message.get("headers", [])
                    if name.decode("latin-1").lower() in STORED_RESPONSE_HEADERS
                ]
            elif message["type"] == "http.response.body":
                if storable:
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_stored_body_bytes:
                        storable = False
                        chunks.clear()
                        log.warning("idempotent_response_too_large_to_store", limit=self.max_stored_body_bytes)
                    else:
                        chunks.append(chunk)
                if not message.get("more_body", False):
                    # Stored before the last byte leaves, so a client retrying the moment it has the answer
                    # gets the replay rather than a 409.
                    await finish()
            else:
                storable = False  # e.g. a zero-copy file send: nothing we can capture
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            if not finished:
                with anyio.CancelScope(shield=True):
                    await self._release(lock)

    async def _release(self, lock: Lock) -> None:
        try:
            await lock.release()
        except RedisError as exc:  # includes the lock having expired under a very slow request
            log.warning("idempotency_lock_release_failed", error=f"{type(exc).__name__}: {exc}")


def install_http_protection(
    app: FastAPI, settings: ServiceSettings, redis: aioredis.Redis | None = None
) -> aioredis.Redis:
    """Add rate limiting (outer) and Idempotency-Key replay (inner) to `app`; returns the Redis client they use.

    The client is kept on ``app.state.http_protection_redis``; close it in the app's lifespan (`aclose()`).
    Needs `shared.auth.install_auth` on the same app to know who calls (without it every caller is anonymous).
    """
    client = redis if redis is not None else redis_client(settings)
    guard = RedisOutageGuard()
    # Starlette wraps later additions around earlier ones: the rate limit runs first, so replays count too.
    app.add_middleware(
        IdempotencyMiddleware,
        redis=client,
        service=settings.service_name,
        ttl_seconds=settings.idempotency_ttl_seconds,
        guard=guard,
    )
    app.add_middleware(
        RateLimitMiddleware,
        redis=client,
        service=settings.service_name,
        limit_per_minute=settings.rate_limit_per_minute,
        guard=guard,
    )
    app.state.http_protection_redis = client
    return client


_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
_ERROR_CONTENT = {"application/json": {"schema": _ERROR_REF}}


#: What the Idempotency-Key replay may answer on any POST, beside whatever the route answers with the same code.
_IDEMPOTENCY_ANSWERS = {
    "400": "Malformed Idempotency-Key.",
    "409": "The first request with this Idempotency-Key is still running, or the answer kept for it cannot be read.",
    "422": "Idempotency-Key reused with another body.",
}


def _idempotency_key_parameter() -> dict[str, Any]:
    """The header as FastAPI documents it on the routes that declare it (declare_idempotency_key): the middleware
    takes it on every POST, declared or not."""
    return {
        "name": IDEMPOTENCY_KEY_HEADER,
        "in": "header",
        "required": False,
        "description": _IDEMPOTENCY_KEY_DESCRIPTION,
        "schema": {
            "anyOf": [{"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN}, {"type": "null"}],
            "title": IDEMPOTENCY_KEY_HEADER,
            "description": _IDEMPOTENCY_KEY_DESCRIPTION,
        },
    }


def _document_cause(responses: dict[str, Any], code: str, cause: str) -> None:
    """Declare `cause` for `code`, after the route's own description when it has one: both may answer."""
    response = responses.get(code)
    if response is None:
        responses[code] = {"description": cause, "content": _ERROR_CONTENT}
    elif cause.lower() not in response["description"].lower():
        own = response["description"].rstrip()
        response["description"] = f"{own if own.endswith('.') else own + '.'} Or: {cause}"


def document_http_protection(document: dict[str, Any]) -> None:
    """Declare what shared.http_protection's middleware may answer on any route: 429 (rate limit), and on POST
    with Idempotency-Key 400 (malformed key), 409 (first request still running, or its kept answer unreadable) and 422 (key reused with
    another body, shaped like our other errors), each named after the route's own wording of that code."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    body = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, schema in {**body.pop("$defs", {}), "ErrorBody": body}.items():
        schemas.setdefault(name, schema)
    for path, operations in document.get("paths", {}).items():
        if path in ("/healthz", "/readyz", "/metrics"):
            continue
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses.setdefault(
                "429", {"description": "Rate limit exceeded; see Retry-After.", "content": _ERROR_CONTENT}
            )
            if method != "post":
                continue
            parameters = operation.setdefault("parameters", [])
            if not any(parameter.get("name") == IDEMPOTENCY_KEY_HEADER for parameter in parameters):
                parameters.append(_idempotency_key_parameter())
            for code, cause in _IDEMPOTENCY_ANSWERS.items():
                _document_cause(responses, code, cause)
