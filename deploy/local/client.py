"""A small HTTP client for the services of a running local stack (used by the CLI, the demo and the e2e test).

Service URLs and the broker address come from the stack's state file (`.stack/state.json`); tokens are dev tokens
signed with the same settings the services read from the environment.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from deploy.local.invocation import command
from deploy.local.stack import read_state
from shared.auth import Role, mint_dev_token
from shared.settings import ServiceSettings

#: A tenant id for tokens that act installation-wide (operators creating organisations).
INSTALLATION_TENANT = uuid.UUID("00000000-0000-0000-0000-000000000000")


class StackNotRunningError(Exception):
    """No launcher is running for the data dir (or the state file is stale)."""


class ServiceError(Exception):
    """A service answered with an error status; `body` is the decoded answer."""

    def __init__(self, method: str, url: str, status_code: int, body: Any) -> None:
        super().__init__(f"{method} {url} → {status_code}: {body}")
        self.status_code = status_code
        self.body = body


@dataclass(frozen=True)
class StackEndpoints:
    """Where a running local stack listens."""

    services: dict[str, str]
    kafka_bootstrap: str

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> StackEndpoints:
        services = {name: str(info["url"]) for name, info in dict(state.get("services", {})).items()}
        return cls(services=services, kafka_bootstrap=str(dict(state["kafka"])["bootstrap"]))

    @classmethod
    def of_running_stack(cls, data_dir: Path) -> StackEndpoints:
        state = read_state(data_dir)
        if state is None:
            raise StackNotRunningError(f"no running stack found in {data_dir}; start one with: {command('up')}")
        return cls.from_state(state)

    def url(self, service: str) -> str:
        try:
            return self.services[service]
        except KeyError:
            raise StackNotRunningError(f"the stack does not run the {service} service") from None


def mint_token(
    tenant: uuid.UUID,
    roles: Iterable[Role | str],
    *,
    programs: Iterable[uuid.UUID] = (),
    person_id: uuid.UUID | None = None,
    subject: str | None = None,
    ttl: timedelta = timedelta(hours=8),
    settings: ServiceSettings | None = None,
) -> str:
    """A dev token the local services accept (they read the same MENTORLOOM_* settings)."""
    return mint_dev_token(
        settings or ServiceSettings(),
        subject=subject or (str(person_id) if person_id else f"dev-{uuid.uuid4().hex[:8]}"),
        tenant=tenant,
        roles=roles,
        programs=programs,
        person_id=person_id,
        ttl=ttl,
    )


class ApiClient:
    """JSON over HTTP to the stack's services with one bearer token; errors raise `ServiceError`."""

    def __init__(
        self,
        endpoints: StackEndpoints,
        token: str,
        *,
        timeout: float = 120.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.endpoints = endpoints
        self.token = token
        self._http = httpx.Client(timeout=timeout, headers={"Authorization": f"Bearer {token}"}, transport=transport)

    def as_token(self, token: str) -> ApiClient:
        """The same endpoints with another caller."""
        return ApiClient(self.endpoints, token)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def request(
        self,
        service: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | Iterator[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        expect: Iterable[int] = (),
    ) -> httpx.Response:
        url = self.endpoints.url(service) + path
        try:
            response = self._http.request(method, url, json=json, content=content, headers=headers, params=params)
        except httpx.TransportError as exc:
            raise StackNotRunningError(f"{service} does not answer at {url}: {exc}") from exc
        if response.status_code >= 400 and response.status_code not in set(expect):
            try:
                body: Any = response.json()
            except ValueError:
                body = response.text
            raise ServiceError(method, url, response.status_code, body)
        return response

    def get(self, service: str, path: str, **params: Any) -> Any:
        return self.request(service, "GET", path, params=params or None).json()

    def post(self, service: str, path: str, body: Any = None, **headers: str) -> Any:
        response = self.request(service, "POST", path, json=body, headers=headers or None)
        return response.json() if response.content else None

    def put(self, service: str, path: str, body: Any, *, if_match: str | None = None) -> Any:
        response = self.request(service, "PUT", path, json=body, headers=_if_match(if_match))
        return response.json() if response.content else None

    def delete(self, service: str, path: str, *, if_match: str | None = None) -> None:
        self.request(service, "DELETE", path, headers=_if_match(if_match))

    def etag(self, service: str, path: str) -> str:
        return self.request(service, "GET", path).headers["ETag"]

    def pages(self, service: str, path: str, *, limit: int = 200, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a paged collection (`{"items": [...], "next_offset": ...}`): every list of the four services
        pages by limit and offset; profiles' deprecated `next_cursor` is not followed."""
        offset = 0
        while True:
            page = self.get(service, path, limit=limit, **params, **({"offset": offset} if offset else {}))
            yield from page["items"]
            if page.get("next_offset") is None:
                return
            offset = page["next_offset"]


def _if_match(etag: str | None) -> dict[str, str] | None:
    return {"If-Match": etag} if etag else None
