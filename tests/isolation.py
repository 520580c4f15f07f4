"""Tenant and role isolation probes shared by every service's access test.

Each service's test lists, for every route of its app (read from ``app.routes``, so a new route without a case fails),
the call that reaches one real resource of tenant A, who may make it, and the outsiders who must not:
- a token of another tenant (B) naming A's program and A's person ids in its claims: tenant isolation wins;
- a participant of A who is not a party of the resource;
- a coordinator of another program of A.
A route with an id must refuse every outsider (404, or 403 where the service refuses by role first): never 2xx,
never a 500. A list without an id may answer an outsider, but with nothing of the resource in it. The allowed caller
then makes the same call and must succeed: the outsiders were refused the resource, not a malformed request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

REFUSED = "refused"
OK = "ok"
UNLEAKED = "refused or answered without the resource"

RouteKey = tuple[str, str]  # (method, path template as the app declares it)
Headers = dict[str, str]


@dataclass
class Call:
    """One request reaching a resource of tenant A, and who may make it."""

    path: str
    insider: Headers
    outsiders: dict[str, Headers]
    json: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    headers: Headers = field(default_factory=dict)
    secrets: tuple[str, ...] = ()  # what an outsider's answer to a list without an id must not contain
    insider_statuses: tuple[int, ...] = ()  # besides 2xx, e.g. 409 where the call's effect needs another state
    must_refuse: bool | None = None  # default: when the path takes an id (a write naming ids in its body too)

    def refuses(self, key: RouteKey) -> bool:
        return takes_an_id(key) if self.must_refuse is None else self.must_refuse


def api_routes(app: FastAPI) -> set[RouteKey]:
    """Every (method, path) the app serves but its own API documents, HEAD left out (it follows GET).

    FastAPI keeps an included router as one entry of `app.routes`; iter_route_contexts expands it as the OpenAPI
    generator does, with the prefix applied.
    """
    documents = {app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url}
    return {
        (method, route.path)
        for route in iter_route_contexts(app.routes)
        if route.path is not None and route.path not in documents
        for method in route.methods or ()
        if method != "HEAD"
    }


def takes_an_id(key: RouteKey) -> bool:
    return "{" in key[1]


def outcome(key: RouteKey, call: Call, response: httpx.Response) -> str:
    """What an outsider's response amounts to: refused, answered without the resource, or what leaked."""
    if not call.refuses(key):
        if response.status_code in (403, 404):
            return UNLEAKED
        if 200 <= response.status_code < 300 and not any(secret in response.text for secret in call.secrets):
            return UNLEAKED
    elif response.status_code in (403, 404):
        return REFUSED
    return f"{response.status_code}: {response.text[:200]}"


async def send(client: httpx.AsyncClient, method: str, call: Call, headers: Headers) -> httpx.Response:
    return await client.request(method, call.path, json=call.json, params=call.params, headers=headers | call.headers)


async def probe(client: httpx.AsyncClient, key: RouteKey, call: Call) -> dict[str, str]:
    """Each outsider's outcome, then the allowed caller's ("ok" when it succeeds)."""
    method, _ = key
    found: dict[str, str] = {}
    for name, headers in call.outsiders.items():
        found[name] = outcome(key, call, await send(client, method, call, headers))
    response = await send(client, method, call, call.insider)
    allowed = 200 <= response.status_code < 300 or response.status_code in call.insider_statuses
    found["allowed caller"] = OK if allowed else f"{response.status_code}: {response.text[:300]}"
    return found


def expected(key: RouteKey, call: Call) -> dict[str, str]:
    refused = REFUSED if call.refuses(key) else UNLEAKED
    return dict.fromkeys(call.outsiders, refused) | {"allowed caller": OK}


MakeCall = Callable[[], Awaitable[Call]]
# What every service's kit serves to anyone (probes and Prometheus): no tenant data, no id.
KIT_ROUTES: dict[RouteKey, MakeCall | None] = {
    ("GET", "/healthz"): None,
    ("GET", "/readyz"): None,
    ("GET", "/metrics"): None,
}


async def check_every_route(
    client: httpx.AsyncClient, app: FastAPI, cases: Mapping[RouteKey, MakeCall | None]
) -> list[str]:
    """Every way a route answered other than expected, one line each ("METHOD path | caller | got, wanted");
    a case of None is a route anyone may call (health probes, metrics, public feeds)."""
    routes = api_routes(app)
    assert not routes - set(cases), f"routes without a case (None: open to anyone): {sorted(routes - set(cases))}"
    assert not set(cases) - routes, f"cases of no route: {sorted(set(cases) - routes)}"
    wrong: list[str] = []
    for key, make in sorted(cases.items()):
        if make is None:
            continue
        call = await make()
        found = await probe(client, key, call)
        for caller, wanted in expected(key, call).items():
            if found[caller] != wanted:
                wrong.append(f"{' '.join(key)} | {caller} | got {found[caller]}, wanted {wanted}")
    return wrong
