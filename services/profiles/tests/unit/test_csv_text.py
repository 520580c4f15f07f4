"""Uploaded bytes to lines: encodings by BOM, line endings cut between chunks, where bytes stop being text."""

from __future__ import annotations

import codecs
from collections.abc import Callable

import pytest

from services.profiles.domain.csv_text import NotTextError, TextLines, UnsupportedEncodingError


def lines_of(body: bytes, chunk: int, lines: list[str] | None = None) -> list[str]:
    """The lines of body fed chunk by chunk; they are also collected in ``lines``, which a NotTextError leaves."""
    text = TextLines()
    lines = [] if lines is None else lines
    for start in range(0, len(body), chunk):
        lines.extend(text.feed(body[start : start + chunk]))
    return lines + text.finish()


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 1000])
@pytest.mark.parametrize(
    ("encode", "ending"),
    [
        (lambda s: s.encode(), "\n"),
        (lambda s: codecs.BOM_UTF8 + s.encode(), "\r\n"),
        (lambda s: codecs.BOM_UTF16_LE + s.encode("utf-16-le"), "\r\n"),
        (lambda s: codecs.BOM_UTF16_BE + s.encode("utf-16-be"), "\r"),
    ],
    ids=["utf-8 lf", "utf-8 bom crlf", "utf-16-le crlf", "utf-16-be cr"],
)
def test_lines_keep_their_ending_whatever_the_chunks_cut(
    encode: Callable[[str], bytes], ending: str, chunk: int
) -> None:
    body = ending.join(["a,b", "Zoë,李", "", "c,d"]) + ending
    assert lines_of(encode(body), chunk) == [line + ending for line in ["a,b", "Zoë,李", "", "c,d"]]


@pytest.mark.parametrize("chunk", [1, 4, 1000])
def test_a_lone_carriage_return_ends_a_line_only_in_a_file_whose_header_ends_so(chunk: int) -> None:
    assert lines_of(b"a,b\rc,d\re", chunk) == ["a,b\r", "c,d\r", "e"]
    # In a "\n" file a "\r" inside a line stays in it (the CSV reader takes it in a quoted cell).
    assert lines_of(b'a,b\r\nc,"x\ry"\r\n', chunk) == ["a,b\r\n", 'c,"x\ry"\r\n']


def test_a_file_without_a_line_ending_is_one_line() -> None:
    assert lines_of(b"a,b", 1) == ["a,b"]
    assert lines_of(b"", 1) == []


@pytest.mark.parametrize("chunk", [1, 2, 3, 1000])
def test_bytes_that_are_not_utf8_stop_the_file_at_their_offset_after_the_whole_lines_before(chunk: int) -> None:
    body = codecs.BOM_UTF8 + "h\nZoë\n".encode() + b"Jos\xe9\nlater\n"
    lines: list[str] = []
    with pytest.raises(NotTextError) as raised:
        lines_of(body, chunk, lines)
    assert lines + raised.value.lines == ["h\n", "Zoë\n"]  # not the start of the bad line
    assert (raised.value.encoding, raised.value.offset, raised.value.bad) == ("UTF-8", body.index(b"\xe9"), b"\xe9")


@pytest.mark.parametrize("chunk", [1, 1000])
def test_a_utf16_file_cut_in_the_middle_of_a_character_is_not_text_at_its_last_byte(chunk: int) -> None:
    body = codecs.BOM_UTF16_LE + "a\n".encode("utf-16-le") + b"b"
    lines: list[str] = []
    with pytest.raises(NotTextError) as raised:
        lines_of(body, chunk, lines)
    assert lines + raised.value.lines == ["a\n"]
    assert (raised.value.encoding, raised.value.offset) == ("UTF-16", len(body) - 1)


@pytest.mark.parametrize("bom", [codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE])
@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_a_utf32_bom_is_refused_rather_than_read_as_utf16_or_utf8(bom: bytes, chunk: int) -> None:
    codec = "utf-32-le" if bom == codecs.BOM_UTF32_LE else "utf-32-be"
    with pytest.raises(UnsupportedEncodingError, match="the file is UTF-32"):
        lines_of(bom + "email,display_name\r\n".encode(codec), chunk)
