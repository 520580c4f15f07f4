"""Every event type survives encode → decode, and decode rejects what it must with the right error."""

from dataclasses import FrozenInstanceError
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID, uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, computed_field, field_serializer

from shared.events import (
    ALL_SPECS,
    EventDecodeError,
    EventEnvelope,
    InvalidHeaderError,
    InvalidJsonError,
    MatchEnded,
    MissingHeaderError,
    ProfileUpdated,
    SchemaValidationError,
    UnknownEventTypeError,
    dead_letter_topic,
    decode,
    encode,
    samples,
    spec_for,
)
from shared.events.envelope import REQUIRED_HEADERS, encode_data
from shared.events.models import EventData, MatchProposed
from shared.events.values import FactorScore

SPECS = {spec.name: spec for spec in ALL_SPECS}


def replace_header(headers: list[tuple[str, bytes]], name: str, value: bytes) -> list[tuple[str, bytes]]:
    return [(key, value if key == name else raw) for key, raw in headers]


def test_the_sample_factory_covers_the_whole_catalogue():
    assert set(samples.FACTORIES) == {spec.model for spec in ALL_SPECS}


@pytest.mark.parametrize("name", list(SPECS))
def test_every_event_type_round_trips_through_the_kafka_binary_binding(name):
    spec = SPECS[name]
    envelope = samples.envelope(samples.sample(spec.model))
    topic, key, value, headers = encode(envelope)

    decoded = decode(headers, value)

    assert decoded == envelope
    assert type(decoded.data) is spec.model
    assert topic == spec.topic
    assert key == str(getattr(envelope.data, spec.key_field)).encode()
    header_map = dict(headers)
    assert header_map["ce_type"] == spec.ce_type.encode()
    assert header_map["ce_subject"] == str(getattr(envelope.data, spec.subject_field)).encode()
    assert header_map["ce_tenantid"] == str(envelope.data.tenant_id).encode()
    assert header_map["content-type"] == b"application/json"


@pytest.mark.parametrize("name", list(SPECS))
def test_the_fast_json_of_every_event_type_is_byte_for_byte_pydantics(name):
    data = samples.sample(SPECS[name].model)
    assert encode_data(data) == data.model_dump_json().encode()


@given(
    score=st.floats(min_value=0, max_value=1),
    weight=st.floats(min_value=0, max_value=100),
    expires_at=st.datetimes(timezones=st.timezones()),
)
def test_the_fast_json_writes_any_score_and_instant_as_pydantic_does(score, weight, expires_at):
    template = samples.match_proposed()
    factors = tuple(f.model_copy(update={"weight": weight, "contribution": score}) for f in template.breakdown)
    data = samples.match_proposed(score=score, breakdown=factors, expires_at=expires_at)
    assert encode_data(data) == data.model_dump_json().encode()


def test_a_field_type_orjson_cannot_write_falls_back_to_pydantics_json():
    class WithDecimal(EventData):
        amount: Decimal

    data = WithDecimal(tenant_id=uuid4(), amount=Decimal("1.10"))
    assert encode_data(data) == data.model_dump_json().encode()


class _Money(BaseModel):
    model_config = ConfigDict(serialize_by_alias=True)

    amount: float
    currency: str = Field(serialization_alias="cur")


class _WithComputedField(EventData):
    hours: float

    @computed_field  # type: ignore[prop-decorator]
    @property
    def minutes(self) -> float:
        return self.hours * 60


class _WithFieldSerializer(EventData):
    code: str

    @field_serializer("code")
    def _upper(self, code: str) -> str:
        return code.upper()


class _WithAliasedNestedModel(EventData):
    price: _Money


class _KeepingExtraFields(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str


class _WithNestedExtraFields(EventData):
    tag: _KeepingExtraFields


class _AnnotatedFactorScore(FactorScore):
    note: str = "not a field of FactorScore"


def _proposal_with_a_factor_subclass() -> MatchProposed:
    proposal = samples.match_proposed()
    first = proposal.breakdown[0]
    subclassed = _AnnotatedFactorScore(**first.model_dump())
    return proposal.model_copy(update={"breakdown": (subclassed, *proposal.breakdown[1:])})


@pytest.mark.parametrize(
    "data",
    [
        _WithComputedField(tenant_id=uuid4(), hours=1.5),
        _WithFieldSerializer(tenant_id=uuid4(), code="abc"),
        _WithAliasedNestedModel(tenant_id=uuid4(), price=_Money(amount=2.5, currency="EUR")),
        _WithNestedExtraFields(tenant_id=uuid4(), tag=_KeepingExtraFields(name="a", colour="red")),
        _proposal_with_a_factor_subclass(),
    ],
    ids=[
        "computed field",
        "field serializer",
        "nested model with a serialization alias",
        "nested model keeping extra fields",
        "subclass of a declared nested model",
    ],
)
def test_a_model_pydantic_writes_otherwise_than_as_its_fields_is_written_by_pydantic(data):
    # Writing these from their fields would drop "minutes", keep "abc" lower-case, name "currency" wrongly, drop
    # "colour", or add the subclass's "note" (pydantic writes an instance as the class its field declares).
    assert encode_data(data) == data.model_dump_json().encode()


@pytest.mark.parametrize("traceparent", [None, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"])
def test_wrapped_and_decoded_envelopes_equal_ones_built_by_the_dataclass_and_stay_immutable(traceparent):
    data = samples.match_proposed()
    tracestate = None if traceparent is None else "vendor=1"
    event_id, time = uuid4(), datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    expected = EventEnvelope(
        data=data,
        type="org.mentorloom.match.proposed.v1",
        source="/mentorloom/matching",
        subject=str(data.match_id),
        tenant_id=data.tenant_id,
        id=event_id,
        time=time,
        traceparent=traceparent,
        tracestate=tracestate,
    )
    wrapped = EventEnvelope.wrap(data, id=event_id, time=time, traceparent=traceparent, tracestate=tracestate)
    _, _, value, headers = encode(expected)
    decoded = decode(headers, value)
    for envelope in (wrapped, decoded):
        assert envelope == expected
        assert repr(envelope) == repr(expected)
        with pytest.raises(FrozenInstanceError):
            envelope.subject = "other"  # type: ignore[misc]


def test_headers_follow_cloudevents_names_and_time_is_rfc3339_utc():
    _, _, _, headers = encode(samples.envelope(samples.match_accepted()))
    header_map = dict(headers)
    assert header_map["ce_specversion"] == b"1.0"
    assert header_map["ce_time"] == b"2025-09-15T09:30:00Z"
    assert header_map["ce_source"] == b"/mentorloom/matching"
    assert header_map["ce_traceparent"] == samples.SAMPLE_TRACEPARENT.encode()


def test_bare_data_is_wrapped_with_a_fresh_id_and_time():
    first = encode(samples.check_in_due())
    second = encode(samples.check_in_due())
    assert dict(first.headers)["ce_id"] != dict(second.headers)["ce_id"]
    assert decode(first.headers, first.value).data == samples.check_in_due()


def test_enrolment_events_share_the_partition_key_of_their_person_profile():
    person = samples.MENTOR_ID
    assert (
        encode(samples.enrollment_changed(person_id=person)).key
        == encode(samples.profile_updated(person_id=person)).key
    )


def test_meeting_check_in_and_feedback_events_are_keyed_by_their_match():
    keys = {encode(samples.sample(model)).key for model in samples.FACTORIES if spec_for(model).key_field == "match_id"}
    assert keys == {str(samples.MATCH_ID).encode()}


def test_a_newer_producers_extra_field_is_ignored_by_the_decoder():
    _, _, value, headers = encode(samples.envelope(samples.match_ended()))
    widened = value[:-1] + b',"added_in_a_later_minor":"x"}'
    assert decode(headers, widened).data == samples.match_ended()


def test_an_invalid_traceparent_is_dropped_rather_than_rejecting_the_event():
    _, _, value, headers = encode(samples.envelope(samples.match_ended()))
    decoded = decode(replace_header(headers, "ce_traceparent", b"not-a-trace"), value)
    assert decoded.traceparent is None


def test_undecodable_json_raises_invalid_json():
    _, _, _, headers = encode(samples.envelope(samples.match_ended()))
    with pytest.raises(InvalidJsonError) as caught:
        decode(headers, b'{"tenant_id": ')
    assert caught.value.reason == "invalid_json"
    assert caught.value.ce_type == "org.mentorloom.match.ended.v1"


def test_a_missing_value_raises_invalid_json():
    _, _, _, headers = encode(samples.envelope(samples.match_ended()))
    with pytest.raises(InvalidJsonError):
        decode(headers, None)


def test_an_unknown_type_raises_unknown_event_type():
    _, _, value, headers = encode(samples.envelope(samples.match_ended()))
    with pytest.raises(UnknownEventTypeError) as caught:
        decode(replace_header(headers, "ce_type", b"org.mentorloom.match.ended.v9"), value)
    assert caught.value.reason == "unknown_type"


@pytest.mark.parametrize("missing", REQUIRED_HEADERS)
def test_a_missing_required_header_raises_missing_header(missing):
    _, _, value, headers = encode(samples.envelope(samples.match_ended()))
    with pytest.raises(MissingHeaderError, match=missing):
        decode([(name, raw) for name, raw in headers if name != missing], value)


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("ce_specversion", b"0.3"),
        ("ce_id", b"not-a-uuid"),
        ("ce_time", b"yesterday"),
        ("ce_time", b"2025-09-15T09:30:00"),
        ("ce_tenantid", b"acme"),
        ("content-type", b"application/avro"),
        ("ce_source", b"\xff\xfe"),
    ],
)
def test_a_malformed_header_raises_invalid_header_naming_it(header, value):
    _, _, payload, headers = encode(samples.envelope(samples.match_ended()))
    with pytest.raises(InvalidHeaderError, match=header):
        decode(replace_header(headers, header, value), payload)


@pytest.mark.parametrize("foreign", [("x-binary-checksum", b"\xff\xfe\x00"), ("x-flag", None)])
def test_a_foreign_header_that_is_not_text_does_not_keep_the_event_from_decoding(foreign):
    envelope = samples.envelope(samples.match_ended())
    _, _, payload, headers = encode(envelope)
    decoded = decode([*headers, foreign], payload)
    assert decoded == envelope


@pytest.mark.parametrize(
    "spelling",
    [str.upper, lambda text: text.replace("-", ""), lambda text: "{" + text + "}", lambda text: "urn:uuid:" + text],
)
def test_an_event_id_in_any_spelling_python_accepts_decodes_to_the_same_uuid(spelling):
    envelope = samples.envelope(samples.match_ended())
    _, _, payload, headers = encode(envelope)
    decoded = decode(replace_header(headers, "ce_id", spelling(str(envelope.id)).encode()), payload)
    assert decoded.id == envelope.id
    assert type(decoded.id) is UUID


def test_data_that_breaks_the_model_raises_schema_validation():
    _, _, value, headers = encode(samples.envelope(samples.match_ended()))
    invalid = value.replace(b'"not_a_good_fit"', b'"she was rude to me"')
    with pytest.raises(SchemaValidationError) as caught:
        decode(headers, invalid)
    assert caught.value.reason == "invalid_data"
    assert "reason_category" in str(caught.value)


def test_valid_json_of_the_wrong_shape_raises_schema_validation():
    _, _, _, headers = encode(samples.envelope(samples.match_ended()))
    with pytest.raises(SchemaValidationError):
        decode(headers, b"[1, 2, 3]")


def test_a_tenant_header_that_differs_from_the_data_raises_schema_validation():
    _, _, value, headers = encode(samples.envelope(samples.match_ended()))
    other = str(samples.OTHER_TENANT_ID).encode()
    with pytest.raises(SchemaValidationError, match="tenant"):
        decode(replace_header(headers, "ce_tenantid", other), value)


def test_every_decode_error_is_an_event_decode_error_for_the_dead_letter_route():
    for error in (
        InvalidHeaderError,
        MissingHeaderError,
        UnknownEventTypeError,
        InvalidJsonError,
        SchemaValidationError,
    ):
        assert issubclass(error, EventDecodeError)


def test_the_envelope_refuses_naive_time_and_malformed_trace_context():
    data = samples.match_ended()
    with pytest.raises(ValueError, match="timezone"):
        EventEnvelope.wrap(data, time=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="traceparent"):
        EventEnvelope.wrap(data, traceparent="00-123-456-01")
    assert EventEnvelope.wrap(data, time=datetime(2025, 1, 1, tzinfo=UTC)).time.tzinfo is UTC


def test_encode_refuses_an_envelope_whose_tenant_differs_from_its_data():
    envelope = EventEnvelope.wrap(samples.match_ended())
    forged = EventEnvelope(
        data=envelope.data,
        type=envelope.type,
        source=envelope.source,
        subject=envelope.subject,
        tenant_id=uuid4(),
    )
    with pytest.raises(ValueError, match="tenant"):
        encode(forged)


def test_dead_letter_topics_are_named_after_their_topic():
    assert dead_letter_topic("mentorloom.profiles.v1") == "mentorloom.profiles.v1.dlq"
    with pytest.raises(ValueError, match="dead-letter"):
        dead_letter_topic("mentorloom.profiles.v1.dlq")


def test_the_sample_factory_rejects_fields_the_model_does_not_have():
    with pytest.raises(TypeError, match="private_note"):
        samples.feedback_submitted(private_note="nope")


def test_profile_samples_accept_overrides_and_stay_valid():
    profile = samples.sample(ProfileUpdated, version=9, blocked_person_ids=(samples.MENTOR_ID,))
    assert profile.version == 9
    assert profile.blocked_person_ids == (samples.MENTOR_ID,)
    assert isinstance(samples.sample(MatchEnded), MatchEnded)
