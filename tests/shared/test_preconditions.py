"""If-Match handling: the version a write may replace."""

from __future__ import annotations

import pytest
from fastapi import HTTPException

from shared.preconditions import contradicts, expected_version, names_version, well_formed_if_match


@pytest.mark.parametrize("header", ['"4"', "4", 'W/"4"', '"3", "4"', "*"])
def test_an_if_match_naming_the_current_version_is_accepted(header: str) -> None:
    assert expected_version(header, 4) == 4


def test_a_stale_if_match_is_a_412() -> None:
    with pytest.raises(HTTPException) as raised:
        expected_version('"3"', 4)
    assert raised.value.status_code == 412


@pytest.mark.parametrize("header", [None, "", "  "])
def test_a_missing_if_match_is_a_428(header: str | None) -> None:
    with pytest.raises(HTTPException) as raised:
        expected_version(header, 4)
    assert raised.value.status_code == 428


@pytest.mark.parametrize(
    ("header", "named"), [('"4"', True), ('W/"4"', True), ('"2", "4"', True), ("*", True), ('"3"', False)]
)
def test_an_if_match_names_a_version_by_strong_or_weak_tag_or_star(header: str, named: bool) -> None:
    assert names_version(header, 4) is named


@pytest.mark.parametrize(
    ("header", "refused"), [(None, False), ("  ", False), ('"4"', False), ("*", False), ('"3"', True)]
)
def test_an_optional_if_match_refuses_a_write_only_when_it_names_another_version(
    header: str | None, refused: bool
) -> None:
    assert contradicts(header, 4) is refused


@pytest.mark.parametrize("header", ['"4"', "4", 'W/"4"', ' "3" , W/"4" ', "*", "", '"a-b.c"'])
def test_a_well_formed_if_match_is_taken_as_sent(header: str) -> None:
    assert well_formed_if_match(header) == header


@pytest.mark.parametrize("header", ["zz", '"4', "W/4", '"3", zz', "*, *", '"4" "5"'])
def test_a_malformed_if_match_is_refused_saying_what_it_should_look_like(header: str) -> None:
    with pytest.raises(ValueError, match=r'If-Match is malformed: send the ETag you read, quoted, e\.g\. "3"'):
        well_formed_if_match(header)
