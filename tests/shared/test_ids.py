"""The ids the platform mints are UUIDv7: unique, and ordered by when they were minted."""

from __future__ import annotations

import time
from uuid import UUID, uuid4

from shared.events import samples
from shared.events.envelope import EventEnvelope
from shared.ids import id_text, new_id


def test_new_ids_are_version_7_uuids_and_never_repeat() -> None:
    ids = [new_id() for _ in range(10_000)]
    assert {i.version for i in ids} == {7}
    assert len(set(ids)) == len(ids)


def test_ids_minted_in_later_milliseconds_sort_after_earlier_ones() -> None:
    earlier = new_id()
    time.sleep(0.002)
    later = new_id()
    assert earlier < later
    assert str(earlier) < str(later)  # the inbox stores the text form: its order must hold too


def test_an_event_envelope_gets_a_time_ordered_id_when_none_is_given() -> None:
    first = EventEnvelope.wrap(samples.match_proposed())
    time.sleep(0.002)
    second = EventEnvelope.wrap(samples.match_proposed())
    assert first.id.version == 7
    assert first.id < second.id


def test_id_text_is_exactly_what_str_gives_for_any_uuid_and_any_other_id() -> None:
    edge = [UUID(int=0), UUID(int=(1 << 128) - 1), UUID("00000000-0000-0000-0000-0000000000ff")]
    uuids = [*edge, *(uuid4() for _ in range(2_000)), *(new_id() for _ in range(2_000))]
    assert [id_text(u) for u in uuids] == [str(u) for u in uuids]
    assert id_text(UUID("ABCDEF01-2345-6789-ABCD-EF0123456789")) == "abcdef01-2345-6789-abcd-ef0123456789"
    assert id_text("external-42") == "external-42"  # a consumer's own envelope type may use text ids
    assert id_text(7) == "7"
