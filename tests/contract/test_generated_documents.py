"""The committed JSON Schemas and AsyncAPI document are exactly what the models generate."""

import json
from pathlib import Path

import yaml

from shared.events import generate
from shared.events.registry import ALL_SPECS

DOCS_DIR = generate.DEFAULT_DOCS_DIR


def test_committed_schemas_and_asyncapi_equal_freshly_generated_ones():
    report = generate.compare_with_committed(DOCS_DIR)
    assert report.lines() == []


def test_there_is_one_committed_schema_per_event_type_and_no_other():
    committed = sorted(path.name for path in (DOCS_DIR / "schemas").glob("*.json"))
    assert committed == sorted(f"{spec.ce_type}.json" for spec in ALL_SPECS)


def test_check_mode_exits_non_zero_when_a_committed_file_drifts(tmp_path: Path):
    assert generate.main(["--docs-dir", str(tmp_path)]) == 0
    assert generate.main(["--check", "--docs-dir", str(tmp_path)]) == 0
    asyncapi = tmp_path / "asyncapi.yaml"
    asyncapi.write_text(asyncapi.read_text() + "# edited by hand\n")
    assert generate.main(["--check", "--docs-dir", str(tmp_path)]) == 1


def test_the_generator_refuses_to_overwrite_a_schema_with_an_incompatible_one(tmp_path: Path, capsys):
    assert generate.main(["--docs-dir", str(tmp_path)]) == 0
    schema_path = tmp_path / "schemas" / "org.mentorloom.match.ended.v1.json"
    committed = json.loads(schema_path.read_text())
    committed["properties"]["legacy_field"] = {"type": "string", "format": "uuid"}  # the models no longer have it
    schema_path.write_text(json.dumps(committed))

    assert generate.main(["--docs-dir", str(tmp_path)]) == 1

    assert "legacy_field" in json.loads(schema_path.read_text())["properties"]  # left untouched
    assert "v2" in capsys.readouterr().err


def test_a_committed_schema_without_an_event_type_is_reported_as_a_removed_type(tmp_path: Path):
    generate.main(["--docs-dir", str(tmp_path)])
    (tmp_path / "schemas" / "org.mentorloom.match.retired.v1.json").write_text("{}")
    report = generate.compare_with_committed(tmp_path)
    assert report.removed_types == ["schemas/org.mentorloom.match.retired.v1.json"]
    assert generate.main(["--docs-dir", str(tmp_path)]) == 1


def test_asyncapi_lists_every_topic_as_a_channel_and_every_event_type_as_a_message():
    document = yaml.safe_load((DOCS_DIR / "asyncapi.yaml").read_text())
    assert document["asyncapi"] == "3.0.0"
    assert {channel["address"] for channel in document["channels"].values()} == {spec.topic for spec in ALL_SPECS}
    messages = document["components"]["messages"]
    for spec in ALL_SPECS:
        message = messages[spec.name]
        assert message["payload"] == {"$ref": f"./schemas/{spec.ce_type}.json"}
        assert message["headers"]["allOf"][1]["properties"]["ce_type"] == {"const": spec.ce_type}
        assert spec.key_field in message["bindings"]["kafka"]["key"]["description"]
    headers = document["components"]["schemas"]["CloudEventsHeaders"]
    assert {"ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "ce_subject", "ce_tenantid"} <= set(
        headers["required"]
    )
    assert "ce_traceparent" in headers["properties"]


def test_every_operation_message_refers_to_a_message_of_its_own_channel():
    document = yaml.safe_load((DOCS_DIR / "asyncapi.yaml").read_text())
    for operation in document["operations"].values():
        channel_id = operation["channel"]["$ref"].removeprefix("#/channels/")
        channel_messages = document["channels"][channel_id]["messages"]
        for reference in operation["messages"]:
            prefix = f"#/channels/{channel_id}/messages/"
            assert reference["$ref"].startswith(prefix)
            assert reference["$ref"].removeprefix(prefix) in channel_messages


def test_every_asyncapi_message_shows_a_record_that_the_contract_decodes_and_its_schema_accepts():
    import jsonschema_rs

    from shared.events import decode

    document = yaml.safe_load((DOCS_DIR / "asyncapi.yaml").read_text())
    messages = document["components"]["messages"]
    assert set(messages) == {spec.name for spec in ALL_SPECS}
    for spec in ALL_SPECS:
        (example,) = messages[spec.name]["examples"]
        headers = [(name, str(text).encode()) for name, text in example["headers"].items()]
        event = decode(headers, json.dumps(example["payload"]).encode())
        assert type(event.data) is spec.model
        assert event.type == spec.ce_type
        schema = json.loads((DOCS_DIR / "schemas" / f"{spec.ce_type}.json").read_text())
        validator = jsonschema_rs.Draft202012Validator(schema, validate_formats=True)
        assert [e.message for e in validator.iter_errors(example["payload"])] == []


def test_every_committed_schema_accepts_the_encoded_sample_with_every_format_asserted():
    # Python's jsonschema skips the formats whose optional checkers are not installed ("time" among them);
    # jsonschema-rs (arrives with schemathesis) asserts them all, as a consumer in another language may.
    import jsonschema_rs

    from shared.events import encode, samples

    for spec in ALL_SPECS:
        schema = json.loads((DOCS_DIR / "schemas" / f"{spec.ce_type}.json").read_text())
        validator = jsonschema_rs.Draft202012Validator(schema, validate_formats=True)
        payload = json.loads(encode(samples.sample(spec.model)).value)
        assert [f"{spec.ce_type}: {e.message}" for e in validator.iter_errors(payload)] == []


def test_every_committed_schema_is_valid_json_schema_and_accepts_the_encoded_sample():
    # jsonschema arrives with schemathesis (dev dependencies); it checks the schemas describe the real wire format.
    from jsonschema import Draft202012Validator

    from shared.events import encode, samples

    for spec in ALL_SPECS:
        schema = json.loads((DOCS_DIR / "schemas" / f"{spec.ce_type}.json").read_text())
        Draft202012Validator.check_schema(schema)
        validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
        payload = json.loads(encode(samples.sample(spec.model)).value)
        assert list(validator.iter_errors(payload)) == []
        assert list(validator.iter_errors({**payload, "unexpected": 1})) != []
