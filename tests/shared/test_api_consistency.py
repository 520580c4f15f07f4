"""The four services' HTTP APIs read as one API to an integrator (an HR system, a notification service, analytics):
the same names for the same things, one paging scheme, one error shape, operation ids a single generated client can
hold, and every operation and non-obvious parameter described.

Each test reads the OpenAPI documents of the apps themselves (not docs/openapi/, which
tests/contract/test_openapi_documents.py keeps equal to them), so it checks the code. Where a rule has an exception,
the exception is listed beside it with its reason; a new one has to be argued there.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest
from fastapi import FastAPI

from shared.openapi import SERVICES, definition_of
from shared.service import Runtime

METHODS = ("get", "head", "put", "post", "patch", "delete")
PROBES = {"/healthz", "/readyz"}
ERROR_BODY_REF = {"$ref": "#/components/schemas/ErrorBody"}


@cache
def app_of(service: str) -> FastAPI:
    definition = definition_of(service)
    return definition.build_app(Runtime.from_settings(definition.settings_factory()))


def document_of(service: str) -> dict[str, Any]:
    document: dict[str, Any] = app_of(service).openapi()
    return document


def operations(service: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, path_item in document_of(service)["paths"].items():
        for method, operation in path_item.items():
            if method in METHODS:
                yield path, method, operation


def api_operations(service: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    return ((path, method, op) for path, method, op in operations(service) if path not in PROBES)


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """`X | None` is `anyOf: [X, null]`: nullability is not a different type."""
    options = [option for option in schema.get("anyOf", []) if option.get("type") != "null"]
    if len(options) == 1:
        return {**schema, **options[0], "anyOf": None}
    return schema


def kind_of(document: dict[str, Any], schema: dict[str, Any]) -> str:
    """JSON type and format of a value, enums counted as strings (each service names its own enum types)."""
    schema = without_null(schema)
    if "$ref" in schema:
        target = resolve(document, schema)
        return "string" if "enum" in target else f"object {schema['$ref'].rsplit('/', 1)[-1]}"
    if schema.get("anyOf"):
        return " | ".join(sorted(kind_of(document, option) for option in schema["anyOf"]))
    if schema.get("type") == "array":
        return f"array of {kind_of(document, schema.get('items', {}))}"
    return str(schema.get("type", "any")) + (f":{schema['format']}" if "format" in schema else "")


def response_fields(service: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(schema name, field name, field schema) of every component schema with properties."""
    for name, schema in document_of(service)["components"]["schemas"].items():
        for field, field_schema in schema.get("properties", {}).items():
            yield name, field, field_schema


def parameters(service: str, where: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, method, operation in api_operations(service):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == where:
                yield f"{method.upper()} {path}", parameter["name"], parameter


# ----------------------------------------------------------------------------------------------------------------
# Operations


def test_operation_ids_are_unique_across_the_four_services() -> None:
    """A client generated from all four documents gets one method per operationId: two alike clash."""
    owners: dict[str, list[str]] = defaultdict(list)
    for service in SERVICES:
        for path, method, operation in operations(service):
            owners[operation["operationId"]].append(f"{service}: {method.upper()} {path}")
    assert {op_id: where for op_id, where in owners.items() if len(where) > 1} == {}


@pytest.mark.parametrize("service", SERVICES)
def test_every_operation_says_what_it_does_in_its_own_words(service: str) -> None:
    """FastAPI makes a summary from the function's name ("Read Match", the start of the default operationId) when a
    route gives none; that is not a description. A route reading one resource by its id may rely on it (GET
    /matches/{match_id} needs no prose); every list, search and change says what it does with an explicit summary
    or a docstring."""
    silent, checked = [], 0
    for path, method, operation in api_operations(service):
        generated = operation["operationId"].startswith(operation["summary"].lower().replace(" ", "_"))
        reads_one_by_id = method in ("get", "head") and path.endswith("_id}")
        checked += 1
        if generated and not operation.get("description", "").strip() and not reads_one_by_id:
            silent.append(f"{method.upper()} {path}")
    assert checked > 10
    assert silent == []


# Query and header parameters whose name alone says what they do: an id to filter by, an enum filter named like the
# field of the listed items it compares (its values are documented in the enum), the paging pair (described in
# shared.paging), and the two protocol headers (described by shared.http_protection).
SELF_EXPLANATORY_PARAMETERS = {"state", "status", "role", "kind"}


@pytest.mark.parametrize("service", SERVICES)
def test_every_query_parameter_whose_name_does_not_say_it_all_is_described(service: str) -> None:
    undescribed = [
        f"{where} ?{name}"
        for where, name, parameter in parameters(service, "query")
        if not parameter.get("description")
        and not parameter["schema"].get("description")
        and not name.endswith("_id")
        and name not in SELF_EXPLANATORY_PARAMETERS
    ]
    assert undescribed == []


# FactorWeights is the event contract's model (shared.events.values, where its class says the weights are relative,
# 0 to 100); its fields are described there or not at all, for the events and the API alike.
SCHEMAS_DESCRIBED_BY_THE_EVENT_CONTRACT = {"FactorWeights"}


@pytest.mark.parametrize("service", SERVICES)
def test_every_fractional_number_in_a_schema_says_its_scale(service: str) -> None:
    """A float's meaning is never in its name alone: is a score 0..1 or 0..100, a gap a ratio or a count, a duration
    seconds or hours? Every `number` field says so (integers are counts and days, named as such)."""
    undescribed = [
        f"{schema}.{field}"
        for schema, field, field_schema in response_fields(service)
        if kind_of(document_of(service), field_schema) == "number"
        and not without_null(field_schema).get("description")
        and schema not in SCHEMAS_DESCRIBED_BY_THE_EVENT_CONTRACT
    ]
    assert undescribed == []


# ----------------------------------------------------------------------------------------------------------------
# Paging


def page_operations(service: str) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(where, operation, page schema) of every operation answering an object with an `items` list."""
    document = document_of(service)
    for path, method, operation in api_operations(service):
        content = operation["responses"].get("200", {}).get("content", {}).get("application/json")
        if content is None:
            continue
        schema = resolve(document, content["schema"])
        if schema.get("properties", {}).get("items", {}).get("type") == "array":
            yield f"{method.upper()} {path}", operation, schema


def test_every_list_endpoint_of_every_service_pages_with_the_same_limit_and_offset() -> None:
    """One paging loop works everywhere: `limit` with the same default and bounds, `offset` as shared.paging
    defines it, and the page `{items, next_offset}`."""
    seen: dict[str, set[str]] = defaultdict(set)
    for service in SERVICES:
        document = document_of(service)
        for where, operation, page in page_operations(service):
            query = {
                p["name"]: without_null(p["schema"]) for p in operation.get("parameters", []) if p["in"] == "query"
            }
            limit, offset = query.get("limit", {}), query.get("offset", {})
            seen["limit"].add(repr((limit.get("minimum"), limit.get("maximum"), limit.get("default"))))
            seen["offset"].add(repr((offset.get("minimum"), offset.get("maximum"), offset.get("default"))))
            properties = page["properties"]
            seen["page"].add(repr(sorted(name for name, field in properties.items() if "deprecated" not in field)))
            seen["next_offset"].add(kind_of(document, properties.get("next_offset", {})))
            seen[f"{service}: {where}"] = set()
    shapes = {aspect: values for aspect, values in seen.items() if ":" not in aspect}
    assert shapes == {
        "limit": {repr((1, 1000, 100))},
        "offset": {repr((0, 1_000_000, 0))},
        "page": {repr(["items", "next_offset"])},
        "next_offset": {"integer"},
    }
    assert len(seen) > len(shapes) + 20, "the list endpoints were not found"


# ----------------------------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize("service", SERVICES)
def test_every_operation_documents_the_errors_it_can_answer_in_the_common_shape(service: str) -> None:
    """401 and 403 where a token is required, 404 where a path names a resource, 422 where there is anything to
    validate (400/409 on POST come from the Idempotency-Key replay, 429 from the rate limit: every route)."""
    missing: list[str] = []
    for path, method, operation in api_operations(service):
        expected = {"429"}
        if operation.get("security"):
            expected |= {"401", "403"}
        if any(p["in"] == "path" for p in operation.get("parameters", [])):
            expected |= {"404"}
        if operation.get("parameters") or "requestBody" in operation:
            expected |= {"422"}
        if method == "post":
            expected |= {"400", "409", "422"}
        missing.extend(f"{method.upper()} {path}: {code}" for code in sorted(expected - set(operation["responses"])))
    assert missing == []


@pytest.mark.parametrize("service", SERVICES)
def test_every_documented_client_error_has_the_shared_error_body_schema(service: str) -> None:
    """shared.http_errors.ErrorBody covers both shapes (one error, or 422's list of fields): a client decodes any
    4xx with one type, so no operation may name FastAPI's HTTPValidationError or a union instead."""
    other = [
        f"{method.upper()} {path} {code}: {response.get('content', {}).get('application/json', {}).get('schema')}"
        for path, method, operation in api_operations(service)
        for code, response in operation["responses"].items()
        if code.startswith("4")
        and response.get("content", {}).get("application/json", {}).get("schema") != ERROR_BODY_REF
    ]
    assert other == []


# ----------------------------------------------------------------------------------------------------------------
# Names


# Timestamps that end otherwise, each bounding or qualifying a `*_at` so that the phrase reads as what it is.
TIMESTAMP_NAMES_NOT_ENDING_IN_AT = {
    "due_from": "lower bound of the check-ins' due_at (query)",
    "due_to": "upper bound of the check-ins' due_at (query)",
    "start": "start of the window searched for free slots, beside `days` (query)",
    "deferred_until": "a check-in put off until then",
    "missed_after": "a meeting counts as missed after then",
    "at_risk_since": "when the match became at risk",
}
# Dates that end otherwise.
DATE_NAMES_NOT_ENDING_IN_ON = {
    "as_of": "the day a report is computed for: the established phrase",
    "tenure_start": "the event contract's field (ParticipantRegistered.tenure_start) and the CSV import's column",
}
# A person is a person_id wherever it appears, qualified by its part (mentee_person_id, manager_person_id).
PERSON_NAMES_TO_AVOID = re.compile(r"(^|_)(user|participant|mentee|mentor|member|employee)_id$")


def named_values(service: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(where, name, schema) of every schema field and every query or path parameter."""
    for schema, field, field_schema in response_fields(service):
        yield f"{service}: {schema}.{field}", field, field_schema
    for where in ("query", "path"):
        for operation, name, parameter in parameters(service, where):
            yield f"{service}: {operation} ?{name}", name, parameter["schema"]


def named_kinds(service: str) -> Iterator[tuple[str, str, dict[str, Any], str]]:
    """named_values with each value's kind_of."""
    document = document_of(service)
    for where, name, schema in named_values(service):
        yield where, name, schema, kind_of(document, schema)


@pytest.mark.parametrize("service", SERVICES)
def test_timestamps_end_in_at_and_dates_in_on(service: str) -> None:
    misnamed = []
    for where, name, _, kind in named_kinds(service):
        if kind == "string:date-time" and not name.endswith("_at") and name not in TIMESTAMP_NAMES_NOT_ENDING_IN_AT:
            misnamed.append(f"{where} (date-time)")
        if kind == "string:date" and not name.endswith("_on") and name not in DATE_NAMES_NOT_ENDING_IN_ON:
            misnamed.append(f"{where} (date)")
        if name.endswith("_at") and kind != "string:date-time":
            misnamed.append(f"{where} ends in _at but is {kind}")
        if name.endswith("_on") and kind != "string:date":
            misnamed.append(f"{where} ends in _on but is {kind}")
    assert misnamed == []


# Ids issued elsewhere (an HR system's own keys), not by Mentorloom: opaque strings.
EXTERNAL_IDS = {"external_id", "reporting_line_id"}


@pytest.mark.parametrize("service", SERVICES)
def test_ids_are_uuids_and_a_person_is_always_a_person_id(service: str) -> None:
    wrong = []
    for where, name, schema, kind in named_kinds(service):
        if name.endswith("_id") and name not in EXTERNAL_IDS and kind != "string:uuid":
            wrong.append(f"{where} is {kind}")
        if PERSON_NAMES_TO_AVOID.search(name) and not schema.get("deprecated"):
            wrong.append(f"{where}: a person's id is named *person_id")
    assert wrong == []


# Names two services use for different things, each fitting where it stands.
HOMONYMS = {
    "start": "an availability window's local wall-clock time (profiles) and the slot search's first instant (?start)",
}


def test_a_name_used_by_two_services_has_one_type_and_format() -> None:
    """A value a client may carry from one service to another (an email, an id, a score) has one JSON type and
    format. Objects and lists are each service's own structures and are left out."""
    kinds: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for service in SERVICES:
        for where, name, _, kind in named_kinds(service):
            if not kind.startswith(("object", "array")) and "|" not in kind:
                kinds[name][kind].add(where)
    differing = {
        name: {kind: sorted(wheres)[:2] for kind, wheres in by_kind.items()}
        for name, by_kind in kinds.items()
        if len(by_kind) > 1
        and name not in HOMONYMS
        and len({where.split(":", 1)[0] for wheres in by_kind.values() for where in wheres}) > 1
    }
    assert differing == {}


@pytest.mark.parametrize("service", SERVICES)
def test_enum_values_are_snake_case(service: str) -> None:
    document = document_of(service)
    snake = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")
    schemas = [schema for _, _, schema in named_values(service)] + list(document["components"]["schemas"].values())
    values = {value for schema in schemas for value in resolve(document, without_null(schema)).get("enum", [])}
    assert values, "no enum found"
    assert sorted(str(value) for value in values if not snake.fullmatch(str(value))) == []


# A path segment that names a file the operation returns keeps its extension.
FILE_SEGMENTS = {"report.csv"}


@pytest.mark.parametrize("service", SERVICES)
def test_paths_are_kebab_case_and_their_parameters_are_named_after_the_collection(service: str) -> None:
    """`/campuses/{campus_id}`: a path parameter is the singular of the collection before it plus `_id`, the name
    its resource's id has as a field elsewhere. Participants and mentees are people: their id is a person_id."""
    people = {"participants", "mentees"}
    singular = {"campuses": "campus", "matches": "match", "enrolments": "enrolment"}
    kebab = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
    wrong = []
    for path, method, _ in api_operations(service):
        segments = path.strip("/").split("/")
        for before, segment in zip(["", *segments], segments, strict=False):
            if segment.startswith("{"):
                name = segment.strip("{}")
                collection = before.replace("-", "_")
                expected = (
                    "person_id"
                    if before in people
                    else "token"
                    if before == "calendar-feeds"
                    else singular.get(collection, collection.removesuffix("s")) + "_id"
                )
                if name != expected:
                    wrong.append(f"{method.upper()} {path}: {{{name}}} should be {{{expected}}}")
            elif not kebab.fullmatch(segment) and segment not in FILE_SEGMENTS:
                wrong.append(f"{method.upper()} {path}: {segment} is not kebab-case")
    assert wrong == []


# A snake_case value list opening a description ("pending_approval, approved, or expired ...") is an enum written in
# prose: a generated client cannot check or switch on it.
VALUES_IN_PROSE = re.compile(r"^\s*`?[a-z][a-z0-9_]*`?(\s*,\s*`?[a-z][a-z0-9_]*`?)+,?\s+or\s+`?[a-z][a-z0-9_]*`?")


@pytest.mark.parametrize("service", SERVICES)
def test_a_status_or_a_value_from_a_fixed_list_is_an_enum_not_a_string_described_in_prose(service: str) -> None:
    """A `status`/`state` (or `*_status`, `*_state`) field or parameter, and a string whose description lists its
    allowed values, is an enum: its values are then in the schema, where a generated client finds them."""
    prose = []
    for where, name, schema, kind in named_kinds(service):
        if kind != "string" or "enum" in resolve(document_of(service), without_null(schema)):
            continue
        if re.search(r"(^|_)(status|state)$", name):
            prose.append(f"{where} is a plain string")
        elif VALUES_IN_PROSE.match(without_null(schema).get("description", "")):
            prose.append(f"{where} lists its values in its description")
    assert prose == []
