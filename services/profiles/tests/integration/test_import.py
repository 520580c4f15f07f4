"""CSV import: mixed good and bad rows, re-import, progress while running."""

from __future__ import annotations

import asyncio
import codecs
from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any
from urllib.parse import urljoin

import pytest
from sqlalchemy import text
from starlette.types import Message

from services.profiles.entrypoints import imports
from services.profiles.entrypoints.api import build_app
from services.profiles.tests.integration.conftest import Api, Tenant

pytestmark = pytest.mark.integration

HEADER = "external_id,email,display_name,tenure_start,time_zone,interests,availability,needs,role,capacity,campus\n"
GOOD_1 = 'E1,one@example.org,One,2021-09-01,Europe/Berlin,chess;maths,mon 09:00-11:00,"writing_publishing:critical",mentee,,North\n'
BAD_EMAIL = "E2,not-an-email,Two,2021-09-01,Europe/Berlin,,,,mentee,,\n"
BAD_ZONE = "E3,three@example.org,Three,2021-09-01,Mars/Olympus,,,,mentor,2,\n"
GOOD_4 = "E4,four@example.org,Four,2019-01-01,America/New_York,,tue 10:00-12:00,,mentor,3,\n"
NO_EXTERNAL = ",five@example.org,Five,2020-02-02,UTC,,,,mentee,,\n"


def csv_headers(headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "Content-Type": "text/csv"}


async def upload(api: Api, tenant: Tenant, body: str | AsyncIterator[bytes]) -> dict:  # type: ignore[type-arg]
    response = await api.client.post(
        f"/v1/programs/{tenant.program_id}/imports",
        content=body.encode() if isinstance(body, str) else body,
        headers=csv_headers(tenant.coordinator),
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def count(api: Api, sql: str) -> int:
    async with api.runtime.engine.connect() as conn:
        return int((await conn.execute(text(sql))).scalar_one())


async def test_good_rows_are_imported_and_bad_rows_reported_by_row_and_column(api: Api, tenant: Tenant) -> None:
    report = await upload(api, tenant, HEADER + GOOD_1 + BAD_EMAIL + BAD_ZONE + GOOD_4 + NO_EXTERNAL)
    assert report["status"] == "completed"
    assert (report["rows_processed"], report["rows_imported"], report["rows_failed"]) == (5, 3, 2)
    assert [(e["row_number"], e["column"]) for e in report["errors"]] == [(3, "email"), (4, "time_zone")]
    mentees = await api.client.get(
        "/v1/participants", params={"program_id": str(tenant.program_id), "role": "mentor"}, headers=tenant.coordinator
    )
    assert {p["email"] for p in mentees.json()["items"]} == {"four@example.org"}
    one = (await api.client.get("/v1/participants", params={"q": "one@"}, headers=tenant.coordinator)).json()["items"][
        0
    ]
    assert one["campus_id"] == str(tenant.campus_id)
    assert one["needs"] == [{"function_key": "writing_publishing", "level": "critical"}]


async def test_a_row_with_several_bad_cells_counts_once_as_processed_and_failed(api: Api, tenant: Tenant) -> None:
    # Three errors in one row (email, time zone, capacity of a mentee): one row processed, one failed, none unchanged.
    three_errors = "E6,not-an-email,Six,2021-09-01,Mars/Olympus,,,,mentee,3,\n"
    report = await upload(api, tenant, HEADER + GOOD_1 + three_errors)
    assert len(report["errors"]) == 3
    assert (report["rows_processed"], report["rows_imported"], report["rows_unchanged"], report["rows_failed"]) == (
        2,
        1,
        0,
        1,
    )


async def test_an_upcoming_starter_up_to_a_year_ahead_is_imported_and_a_later_start_is_a_row_error(
    api: Api, tenant: Tenant
) -> None:
    soon, too_late = (date.today() + timedelta(days=days) for days in (300, 400))
    header = "email,display_name,tenure_start,time_zone,role\n"
    report = await upload(
        api, tenant, f"{header}soon@example.org,Soon,{soon},UTC,mentee\nlate@example.org,Late,{too_late},UTC,mentee\n"
    )
    assert (report["rows_imported"], report["rows_failed"]) == (1, 1)
    [error] = report["errors"]
    assert (error["row_number"], error["column"]) == (3, "tenure_start")
    assert "a year" in error["message"]
    found = await api.client.get("/v1/participants", params={"q": "soon@"}, headers=tenant.coordinator)
    assert found.json()["items"][0]["tenure_start"] == soon.isoformat()


async def test_the_upload_answers_with_its_jobs_location_relative_to_the_upload(api: Api, tenant: Tenant) -> None:
    response = await api.client.post(
        f"/v1/programs/{tenant.program_id}/imports", content=HEADER + GOOD_1, headers=csv_headers(tenant.coordinator)
    )
    assert response.status_code == 201, response.text
    location, job_id = response.headers["Location"], response.json()["id"]
    job = await api.client.get(urljoin(str(response.request.url), location), headers=tenant.coordinator)
    assert job.status_code == 200
    assert job.json()["id"] == job_id
    # Behind the ingress, which strips /api/profiles before the service sees the request, it still names the job.
    upload_url = f"https://mentorloom.example.org/api/profiles/v1/programs/{tenant.program_id}/imports"
    assert urljoin(upload_url, location) == f"https://mentorloom.example.org/api/profiles/v1/imports/{job_id}"


async def test_reimporting_the_same_file_creates_no_duplicates_and_changes_nothing(api: Api, tenant: Tenant) -> None:
    body = HEADER + GOOD_1 + GOOD_4 + NO_EXTERNAL
    await upload(api, tenant, body)
    again = await upload(api, tenant, body)
    assert (again["rows_imported"], again["rows_unchanged"]) == (0, 3)
    assert await count(api, "SELECT count(*) FROM participants") == 4  # three imported + the tenant's own person
    assert await count(api, "SELECT max(version) FROM participants WHERE external_id = 'E1'") == 1


async def test_a_reimport_with_changes_updates_by_external_id_else_email(api: Api, tenant: Tenant) -> None:
    await upload(api, tenant, HEADER + GOOD_1 + NO_EXTERNAL)
    changed = (
        HEADER
        + GOOD_1.replace("One,", "One Renamed,").replace("one@", "one.new@")
        + NO_EXTERNAL.replace("Five", "Five Renamed")
    )
    report = await upload(api, tenant, changed)
    assert report["rows_imported"] == 2
    assert await count(api, "SELECT count(*) FROM participants") == 3
    async with api.runtime.engine.connect() as conn:
        rows: dict[str, str] = dict((await conn.execute(text("SELECT email, display_name FROM participants"))).all())
    assert rows["one.new@example.org"] == "One Renamed"
    assert rows["five@example.org"] == "Five Renamed"


async def test_an_unknown_column_fails_the_whole_import_with_422(api: Api, tenant: Tenant) -> None:
    response = await api.client.post(
        f"/v1/programs/{tenant.program_id}/imports",
        content=b"email,display_name,tenure_start,time_zone,shoe_size\n",
        headers=csv_headers(tenant.coordinator),
    )
    assert response.status_code == 422
    assert "shoe_size" in response.json()["detail"][0]["msg"]


async def test_a_quoted_field_with_a_newline_stays_one_row(api: Api, tenant: Tenant) -> None:
    header = "email,display_name,tenure_start,time_zone,goal_text,role\n"
    report = await upload(api, tenant, header + 'q@example.org,Q,2020-01-01,UTC,"line one\nline two",mentee\n')
    assert (report["rows_imported"], report["rows_failed"]) == (1, 0)


async def test_progress_is_visible_from_another_request_while_the_upload_runs(api: Api, tenant: Tenant) -> None:
    first_batch_sent = asyncio.Event()
    progress_seen = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield HEADER.encode()
        for i in range(1_200):  # more than one batch, so the first one is written before the pause
            yield f"X{i},x{i}@example.org,X {i},2020-01-01,UTC,,,,mentee,,\n".encode()
        first_batch_sent.set()
        await progress_seen.wait()
        yield b"X-last,last@example.org,Last,2020-01-01,UTC,,,,mentee,,\n"

    task = asyncio.create_task(upload(api, tenant, body()))
    await first_batch_sent.wait()
    jobs = (await api.client.get(f"/v1/programs/{tenant.program_id}/imports", headers=tenant.coordinator)).json()[
        "items"
    ]
    progress = None
    for _ in range(200):  # the server may still be writing the first batch: poll until it is committed
        progress = (await api.client.get(f"/v1/imports/{jobs[0]['id']}", headers=tenant.coordinator)).json()
        if progress["rows_processed"] >= 1_000:
            break
        await asyncio.sleep(0.05)
    progress_seen.set()
    report = await task
    assert progress is not None
    assert progress["status"] == "running"
    assert progress["rows_processed"] == 1_000
    assert report["status"] == "completed"
    assert report["rows_imported"] == 1_201


async def test_a_file_of_many_batches_reports_errors_in_row_order_and_the_last_row_for_a_person_wins(
    api: Api, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imports, "IMPORT_BATCH_ROWS", 2)  # four batches, validated while earlier ones are written
    again = GOOD_1.replace("One,", "One Again,")
    other_bad_email = BAD_EMAIL.replace("E2,", "E6,")
    report = await upload(
        api, tenant, HEADER + GOOD_1 + BAD_EMAIL + GOOD_4 + BAD_ZONE + NO_EXTERNAL + again + other_bad_email
    )
    assert report["status"] == "completed"
    assert (report["rows_processed"], report["rows_imported"], report["rows_failed"]) == (7, 4, 3)
    assert [(e["row_number"], e["column"]) for e in report["errors"]] == [(3, "email"), (5, "time_zone"), (8, "email")]
    assert await count(api, "SELECT count(*) FROM participants") == 4  # three people + the tenant's own person
    async with api.runtime.engine.connect() as conn:
        name, version = (
            await conn.execute(text("SELECT display_name, version FROM participants WHERE external_id = 'E1'"))
        ).one()
    assert (name, version) == ("One Again", 2)


async def test_withdrawing_affinity_consent_while_stored_attributes_stay_is_a_row_error(
    api: Api, tenant: Tenant
) -> None:
    header = "external_id,email,display_name,tenure_start,time_zone,consent_affinity_matching"
    await upload(
        api,
        tenant,
        f"{header},affinity_attributes,role\n"  # enrolled: the later files, without a role, may update them
        "A1,a1@example.org,A One,2021-09-01,UTC,true,first_generation,mentee\n"
        "A2,a2@example.org,A Two,2021-09-01,UTC,true,,mentee\n",
    )
    withdrawn = await upload(
        api,
        tenant,
        f"{header}\nA1,a1@example.org,A One,2021-09-01,UTC,false\nA2,a2@example.org,A Two,2021-09-01,UTC,false\n",
    )
    assert withdrawn["status"] == "completed"
    assert (withdrawn["rows_imported"], withdrawn["rows_failed"]) == (1, 1)  # A2 holds no attributes: it may withdraw
    assert [(e["row_number"], e["column"]) for e in withdrawn["errors"]] == [(2, "consent_affinity_matching")]
    assert "affinity_attributes" in withdrawn["errors"][0]["message"]
    async with api.runtime.engine.connect() as conn:
        kept = (
            await conn.execute(
                text("SELECT consent, affinity_attributes, version FROM participants WHERE external_id = 'A1'")
            )
        ).one()
    assert (kept.consent["affinity_matching"], kept.affinity_attributes, kept.version) == (
        True,
        ["first_generation"],
        1,
    )

    cleared = await upload(
        api, tenant, f"{header},affinity_attributes\nA1,a1@example.org,A One,2021-09-01,UTC,false,\n"
    )
    assert (cleared["rows_imported"], cleared["rows_failed"]) == (1, 0)
    async with api.runtime.engine.connect() as conn:
        erased = (
            await conn.execute(text("SELECT consent, affinity_attributes FROM participants WHERE external_id = 'A1'"))
        ).one()
    assert (erased.consent["affinity_matching"], erased.affinity_attributes) == (False, [])


async def test_a_programs_imports_page_until_next_offset_is_null(api: Api, tenant: Tenant) -> None:
    uploaded = [(await upload(api, tenant, HEADER + GOOD_1))["id"] for _ in range(5)]
    pages: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        response = await api.client.get(
            f"/v1/programs/{tenant.program_id}/imports",
            params={"limit": 2, "offset": offset},
            headers=tenant.coordinator,
        )
        assert response.status_code == 200, response.text
        pages.append(response.json())
        offset = pages[-1]["next_offset"]
    assert [len(page["items"]) for page in pages] == [2, 2, 1]
    assert [page["next_offset"] for page in pages] == [2, 4, None]
    assert sorted(job["id"] for page in pages for job in page["items"]) == sorted(uploaded)


async def upload_bytes(api: Api, tenant: Tenant, body: bytes, chunk: int = 7) -> dict:  # type: ignore[type-arg]
    """Upload in small chunks, so line endings, characters and BOMs are cut between chunks as a network may."""

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), chunk):
            yield body[start : start + chunk]

    return await upload(api, tenant, chunks())


async def stored_names(api: Api) -> dict[str, str]:
    async with api.runtime.engine.connect() as conn:
        return dict((await conn.execute(text("SELECT external_id, display_name FROM participants"))).all())  # type: ignore[arg-type]


# Some exports begin with Excel's "sep=;" line, which names the separator; Excel shows the next line as row 1.
@pytest.mark.parametrize("first_lines", [[], ["sep=;"]], ids=["header first", "after a sep line"])
async def test_an_excel_csv_utf8_export_with_semicolons_bom_and_crlf_is_imported(
    api: Api, tenant: Tenant, first_lines: list[str]
) -> None:
    # Excel in a locale whose decimal separator is the comma: "CSV UTF-8" separates by ";" and quotes list cells.
    rows = [
        *first_lines,
        "external_id;email;display_name;tenure_start;time_zone;interests;role",
        'S1;s1@example.org;Zoë Müller;2021-09-01;Europe/Berlin;"chess;maths";mentee',
        "S2;not-an-email;Two;2021-09-01;Europe/Berlin;;mentee",
        "S3;s3@example.org;Åsa;2021-09-01;Europe/Stockholm;go;mentor",
    ]
    report = await upload_bytes(api, tenant, "\ufeff".encode() + "\r\n".join(rows).encode() + b"\r\n")
    assert report["status"] == "completed", report["failure"]
    assert (report["rows_imported"], report["rows_failed"]) == (2, 1)
    assert [(e["row_number"], e["column"]) for e in report["errors"]] == [(3, "email")]
    assert (await stored_names(api))["S1"] == "Zoë Müller"
    found = await api.client.get("/v1/participants", params={"q": "s1@"}, headers=tenant.coordinator)
    assert found.json()["items"][0]["interests"] == ["chess", "maths"]


async def test_an_excel_unicode_text_export_in_utf16_with_tabs_is_imported(api: Api, tenant: Tenant) -> None:
    rows = [
        "external_id\temail\tdisplay_name\ttenure_start\ttime_zone\tgoal_text\trole",
        'U1\tu1@example.org\t李小龍\t2021-09-01\tAsia/Shanghai\t"line one\r\nline two"\tmentee',
        "U2\tu2@example.org\tNiamh Ó Briain\t2021-09-01\tEurope/Dublin\t\tmentor",
        "U3\tu3@example.org\tThree\t2021-09-01\tMars/Olympus\t\tmentee",
    ]
    body = "\r\n".join(rows) + "\r\n"
    for encoded in (codecs.BOM_UTF16_LE + body.encode("utf-16-le"), codecs.BOM_UTF16_BE + body.encode("utf-16-be")):
        report = await upload_bytes(api, tenant, encoded)
        assert report["status"] == "completed", report["failure"]
        assert report["rows_processed"] == 3
        assert [(e["row_number"], e["column"]) for e in report["errors"]] == [(4, "time_zone")]
    names = await stored_names(api)
    assert (names["U1"], names["U2"]) == ("李小龍", "Niamh Ó Briain")


async def test_an_old_mac_file_with_lone_carriage_returns_is_imported_row_by_row(api: Api, tenant: Tenant) -> None:
    rows = [
        "external_id,email,display_name,tenure_start,time_zone,goal_text,role",
        'M1,m1@example.org,One,2021-09-01,UTC,"first\rsecond",mentee',
        "M2,not-an-email,Two,2021-09-01,UTC,,mentee",
        "M3,m3@example.org,Three,2021-09-01,UTC,,mentor",
    ]
    report = await upload_bytes(api, tenant, "\r".join(rows).encode() + b"\r")
    assert report["status"] == "completed", report["failure"]
    assert (report["rows_processed"], report["rows_imported"], report["rows_failed"]) == (3, 2, 1)
    assert [(e["row_number"], e["column"]) for e in report["errors"]] == [(3, "email")]


async def test_a_file_that_is_not_utf8_stops_at_its_row_keeping_the_rows_before_and_says_how_to_export(
    api: Api, tenant: Tenant
) -> None:
    # Excel's plain "CSV (Comma delimited)" on Windows writes Windows-1252: é is the single byte 0xE9.
    rows = [HEADER, GOOD_1, GOOD_4, "E7,seven@example.org,José,2020-01-01,UTC,,,,mentee,,\n", NO_EXTERNAL]
    body = "".join(rows).encode("cp1252")
    report = await upload_bytes(api, tenant, body)
    assert report["status"] == "failed"
    assert (report["rows_processed"], report["rows_imported"]) == (2, 2)  # rows 2 and 3, before the bad one
    offset = body.index(b"\xe9")
    assert report["failure"].startswith(f"row 4 is not UTF-8 text (byte offset {offset}: 0xe9)")
    assert "CSV UTF-8 (Comma delimited)" in report["failure"]
    assert "Google Sheets" in report["failure"]
    assert set(await stored_names(api)) >= {"E1", "E4"}
    assert "E7" not in await stored_names(api)


async def latest_job(api: Api, tenant: Tenant) -> dict[str, Any]:
    jobs = await api.client.get(f"/v1/programs/{tenant.program_id}/imports", headers=tenant.coordinator)
    return jobs.json()["items"][0]  # type: ignore[no-any-return]


async def test_an_unclosed_quote_stops_the_file_keeping_every_row_before_it_and_names_the_last(
    api: Api, tenant: Tenant
) -> None:
    unclosed = 'E9,nine@example.org,"Nine,2020-01-01,UTC,,,,mentee,,\n'
    rest = "".join(f"X{i},x{i}@example.org,X,2020-01-01,UTC,,,,mentee,,\n" for i in range(3_000))  # > 100,000 chars
    report = await upload(api, tenant, HEADER + GOOD_1 + BAD_EMAIL + GOOD_4 + unclosed + rest)
    assert report["status"] == "failed"
    assert (report["rows_processed"], report["rows_imported"], report["rows_failed"]) == (3, 2, 1)
    assert report["failure"].startswith("row 5: a record exceeds 100000 characters (unclosed quote?)")
    assert "the last row imported was row 4" in report["failure"]
    assert set(await stored_names(api)) >= {"E1", "E4"}
    assert not {"E9", "X0"} & set(await stored_names(api))


async def test_a_dropped_upload_keeps_the_rows_received_before_it_and_names_the_last(api: Api, tenant: Tenant) -> None:
    # httpx cannot drop a request half-way: the app is called as a server would, which then reports the disconnect.
    received = [(HEADER + GOOD_1 + GOOD_4 + "E8,eight@exa").encode()]  # the last row is cut off

    async def receive() -> Message:
        if received:
            return {"type": "http.request", "body": received.pop(), "more_body": True}
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        pass

    headers = {**csv_headers(tenant.coordinator), "Host": "profiles"}
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": f"/v1/programs/{tenant.program_id}/imports", "raw_path": b"", "query_string": b"", "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000), "server": ("profiles", 80),
    }  # fmt: skip
    await build_app(api.runtime)(scope, receive, send)
    job = await latest_job(api, tenant)
    assert job["status"] == "failed"
    assert (job["rows_processed"], job["rows_imported"]) == (2, 2)
    assert job["failure"].startswith("the upload was interrupted; the last row imported was row 3")
    assert set(await stored_names(api)) >= {"E1", "E4"}
    assert "E8" not in await stored_names(api)


async def post_header_failure(api: Api, tenant: Tenant, body: bytes) -> str:
    response = await api.client.post(
        f"/v1/programs/{tenant.program_id}/imports", content=body, headers=csv_headers(tenant.coordinator)
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "header"]
    return response.json()["detail"][0]["msg"]  # type: ignore[no-any-return]


async def test_utf16_without_a_bom_is_refused_saying_so_and_how_to_export(api: Api, tenant: Tenant) -> None:
    body = HEADER.replace("\n", "\r\n") + GOOD_4.replace("\n", "\r\n")
    for codec in ("utf-16-le", "utf-16-be"):
        message = await post_header_failure(api, tenant, body.encode(codec))
        assert message.startswith("the header row holds NUL characters: the file looks like UTF-16 without a byte")
        assert "CSV UTF-8 (Comma delimited)" in message
        assert "\x00" not in message
    assert (await latest_job(api, tenant))["status"] == "failed"


async def test_a_utf32_file_is_refused_by_its_bom_rather_than_read_as_utf16(api: Api, tenant: Tenant) -> None:
    for bom, codec in ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be")):
        message = await post_header_failure(api, tenant, bom + (HEADER + GOOD_4).encode(codec))
        assert message.startswith("the file is UTF-32 (by its byte-order mark), which the import does not read")
