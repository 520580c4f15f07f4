"""Calendar files over HTTP as calendar clients poll and import them: stable bodies, revision times, 304s."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from icalendar import Calendar
from sqlalchemy.ext.asyncio import AsyncEngine

from services.scheduling.settings import SchedulingSettings
from services.scheduling.tests.integration.conftest import Feeder, scalar
from services.scheduling.tests.integration.test_api import pair, proposed_by_mentee
from shared.clock import MovableClock
from shared.events import samples

pytestmark = pytest.mark.integration
__all__ = ["pair"]  # the fixture, shared with test_api

START = datetime(2026, 3, 10, 20, 0, tzinfo=UTC)


async def test_a_feed_polled_again_unchanged_is_the_same_bytes_and_a_304_for_its_etag(
    client: httpx.AsyncClient, pair, settings: SchedulingSettings, clock: MovableClock
):
    mentee, mentor, mid = await proposed_by_mentee(client, pair, settings, START)
    feed_path = httpx.URL((await client.post("/v1/me/calendar-feed", headers=mentee)).json()["url"]).path

    first = await client.get(feed_path)
    clock.advance(timedelta(minutes=30))
    second = await client.get(feed_path)

    assert first.headers["content-type"] == "text/calendar; charset=utf-8"
    assert second.content == first.content, "nothing changed, so a client polling sees the same calendar"
    etag = first.headers["ETag"]
    assert second.headers["ETag"] == etag
    unchanged = await client.get(feed_path, headers={"If-None-Match": etag})
    assert (unchanged.status_code, unchanged.content, unchanged.headers["ETag"]) == (304, b"", etag)
    since = await client.get(feed_path, headers={"If-Modified-Since": first.headers["Last-Modified"]})
    assert since.status_code == 304

    clock.advance(timedelta(minutes=1))
    assert (await client.post(f"/v1/meetings/{mid}/accept", headers=mentor)).status_code == 200
    changed = await client.get(feed_path, headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    event = Calendar.from_ical(changed.content).walk("VEVENT")[0]
    assert str(event["STATUS"]) == "CONFIRMED"
    assert (
        await client.get(feed_path, headers={"If-Modified-Since": first.headers["Last-Modified"]})
    ).status_code == 200, "the acceptance is newer than the client's copy"


async def test_dtstamp_and_last_modified_are_when_the_meeting_last_changed_not_when_it_was_downloaded(
    client: httpx.AsyncClient, pair, settings: SchedulingSettings, clock: MovableClock
):
    mentee, mentor, mid = await proposed_by_mentee(client, pair, settings, START)
    proposed_at = clock.now()
    clock.advance(timedelta(hours=2))
    assert (await client.post(f"/v1/meetings/{mid}/accept", headers=mentor)).status_code == 200
    accepted_at = clock.now()
    clock.advance(timedelta(days=1))

    download = await client.get(f"/v1/meetings/{mid}/ics", headers=mentee)
    event = Calendar.from_ical(download.content).walk("VEVENT")[0]

    # RFC 5545 3.8.7.2: without METHOD, DTSTAMP is when the information was last revised in the calendar store.
    assert event.decoded("DTSTAMP") == accepted_at
    assert event.decoded("LAST-MODIFIED") == accepted_at
    assert event.decoded("CREATED") == proposed_at
    assert download.headers["Last-Modified"] == "Sun, 01 Feb 2026 02:00:00 GMT" == _http_date(accepted_at)
    assert download.headers["content-disposition"] == f'attachment; filename="meeting-{mid}.ics"'


def _http_date(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")


async def test_head_on_the_feed_and_the_download_answers_like_get_without_a_body(
    client: httpx.AsyncClient, pair, settings: SchedulingSettings
):
    mentee, _mentor, mid = await proposed_by_mentee(client, pair, settings, START)
    feed_path = httpx.URL((await client.post("/v1/me/calendar-feed", headers=mentee)).json()["url"]).path
    for path, headers in ((feed_path, {}), (f"/v1/meetings/{mid}/ics", mentee)):
        got = await client.get(path, headers=headers)
        probed = await client.head(path, headers=headers)

        assert (probed.status_code, probed.content) == (200, b""), path
        same = ("ETag", "Last-Modified", "Content-Type", "Content-Length", "Cache-Control", "Content-Disposition")
        assert [probed.headers.get(h) for h in same] == [got.headers.get(h) for h in same], path
        assert int(probed.headers["Content-Length"]) == len(got.content) > 0
        unchanged = await client.head(path, headers={**headers, "If-None-Match": got.headers["ETag"]})
        assert (unchanged.status_code, unchanged.headers["ETag"]) == (304, got.headers["ETag"])
        since = await client.head(path, headers={**headers, "If-Modified-Since": got.headers["Last-Modified"]})
        assert since.status_code == 304


async def test_head_on_a_revoked_feed_is_a_404(client: httpx.AsyncClient, pair, settings: SchedulingSettings):
    mentee, _mentor, _mid = await proposed_by_mentee(client, pair, settings, START)
    feed_path = httpx.URL((await client.post("/v1/me/calendar-feed", headers=mentee)).json()["url"]).path
    assert (await client.delete("/v1/me/calendar-feed", headers=mentee)).status_code == 204

    assert (await client.head(feed_path)).status_code == 404


async def test_a_change_of_the_persons_time_zone_is_newer_than_a_copy_from_before_it(
    client: httpx.AsyncClient, pair, settings: SchedulingSettings, clock: MovableClock, feed: Feeder
):
    """The zone changes every DTSTART's TZID and the VTIMEZONE: a client that revalidates by If-Modified-Since alone
    must get them, not a 304 for the meeting's older change."""
    s, match = pair
    mentee, _mentor, mid = await proposed_by_mentee(client, pair, settings, START)
    feed_path = httpx.URL((await client.post("/v1/me/calendar-feed", headers=mentee)).json()["url"]).path
    ics_path = f"/v1/meetings/{mid}/ics"
    before = {path: await client.get(path, headers=mentee) for path in (feed_path, ics_path)}

    clock.advance(timedelta(hours=3))
    await feed(s.person(match.mentee_person_id, "Europe/Berlin", [], version=2))
    moved_at = clock.now()
    clock.advance(timedelta(hours=1))

    for path, copy in before.items():
        since = await client.get(path, headers={**mentee, "If-Modified-Since": copy.headers["Last-Modified"]})
        assert since.status_code == 200, f"{path}: the zone changed after the copy was made"
        assert since.headers["Last-Modified"] == _http_date(moved_at)
        assert since.headers["ETag"] != copy.headers["ETag"]
        event = Calendar.from_ical(since.content).walk("VEVENT")[0]
        assert str(event.decoded("DTSTART").tzinfo) == "Europe/Berlin"
        again = await client.get(path, headers={**mentee, "If-Modified-Since": since.headers["Last-Modified"]})
        assert again.status_code == 304


async def test_a_profile_update_that_keeps_the_time_zone_keeps_last_modified(
    client: httpx.AsyncClient, pair, settings: SchedulingSettings, clock: MovableClock, feed: Feeder
):
    s, match = pair
    mentee, _mentor, mid = await proposed_by_mentee(client, pair, settings, START)
    copy = await client.get(f"/v1/meetings/{mid}/ics", headers=mentee)

    clock.advance(timedelta(hours=3))
    await feed(s.person(match.mentee_person_id, "Australia/Sydney", [], version=2))  # new availability, same zone

    since = await client.get(
        f"/v1/meetings/{mid}/ics", headers={**mentee, "If-Modified-Since": copy.headers["Last-Modified"]}
    )
    assert since.status_code == 304


async def test_an_erasure_forgets_when_the_person_last_changed_time_zone(pair, feed: Feeder, db: AsyncEngine):
    s, match = pair
    person = match.mentee_person_id
    query = "SELECT time_zone_changed_at FROM people WHERE person_id = :p"
    assert await scalar(db, query, p=person) is not None

    await feed(samples.profile_erased(tenant_id=s.tenant_id, person_id=person, version=2))

    assert await scalar(db, query, p=person) is None, "when they moved says where they were"
