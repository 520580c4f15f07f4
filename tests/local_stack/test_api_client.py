"""The command-line tool's HTTP client: paging through collections (the services' paging is tested against the real
services in their own tests; here a transport stands in for one, as a unit test of the client's loop)."""

from __future__ import annotations

import httpx

from deploy.local.client import ApiClient, StackEndpoints

ENDPOINTS = StackEndpoints(services={"profiles": "http://profiles.test"}, kafka_bootstrap="unused:9092")


def paged_by_offset(total: int) -> httpx.MockTransport:
    """An import's row errors as /v1/imports/{id}/errors pages them: offset and limit in, next_offset out."""

    def answer(request: httpx.Request) -> httpx.Response:
        offset, limit = int(request.url.params.get("offset", 0)), int(request.url.params["limit"])
        items = [{"row_number": n + 2} for n in range(offset, min(offset + limit, total))]
        more = offset + limit < total
        return httpx.Response(200, json={"items": items, "next_offset": offset + limit if more else None})

    return httpx.MockTransport(answer)


def paged_like_profiles(total: int, seen: list[httpx.QueryParams]) -> httpx.MockTransport:
    """Profiles' formerly cursor-paged lists (participants, programs, ...): offset and limit in, ``next_offset`` out,
    and still the deprecated ``next_cursor`` beside it."""

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.params)
        if "cursor" in request.url.params:  # this stand-in does not page by cursor: it ends the list
            return httpx.Response(200, json={"items": [], "next_offset": None, "next_cursor": None})
        offset, limit = int(request.url.params.get("offset", 0)), int(request.url.params["limit"])
        items = [{"n": n} for n in range(offset, min(offset + limit, total))]
        more = offset + limit < total
        return httpx.Response(
            200,
            json={
                "items": items,
                "next_offset": offset + limit if more else None,
                "next_cursor": f"00000000-0000-0000-0000-{offset + limit:012d}" if more else None,
            },
        )

    return httpx.MockTransport(answer)


def test_an_offset_paged_collection_is_read_to_its_last_page() -> None:
    # `mentorloom import` showed the first 1,000 of 2,500 row errors: it only followed next_cursor.
    with ApiClient(ENDPOINTS, "token", transport=paged_by_offset(2_500)) as client:
        errors = list(client.pages("profiles", "/v1/imports/x/errors", limit=1_000))
    assert [e["row_number"] for e in errors] == [n + 2 for n in range(2_500)]


def test_a_list_that_still_offers_the_deprecated_cursor_is_read_by_offset_to_its_last_page() -> None:
    # The client followed next_cursor first, so it paged profiles' lists by the deprecated cursor.
    seen: list[httpx.QueryParams] = []
    with ApiClient(ENDPOINTS, "token", transport=paged_like_profiles(450, seen)) as client:
        items = list(client.pages("profiles", "/v1/participants", limit=200))
    assert [i["n"] for i in items] == list(range(450))
    assert [(p.get("offset"), p.get("cursor")) for p in seen] == [(None, None), ("200", None), ("400", None)]
