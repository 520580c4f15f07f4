"""The bytes of an uploaded CSV file as lines of text, chunk by chunk (pure, no I/O).

What spreadsheet exports produce: UTF-8 with or without a BOM (Excel's "CSV UTF-8", Google Sheets, Numbers),
UTF-16 with a BOM (Excel's "Unicode Text"; a UTF-32 BOM is refused), and lines ending in ``\\r\\n``, ``\\n`` or, from old Mac software, a
lone ``\\r``. The encoding (by the BOM) and the line ending (by the header line's) are decided once, at the start of
the file; every later chunk is decoded and split with plain ``str.split``, as fast as before. Text that is not valid
in the file's encoding is never guessed at (decoding Windows-1252 as if it were would corrupt names): it stops the
file at the byte where it happens, after the lines before it.
"""

from __future__ import annotations

import codecs
from typing import Final

# Enough bytes to tell every BOM below, UTF-32's included.
_BOM_BYTES: Final = 4
# UTF-32's little-endian BOM begins with UTF-16's, so it is checked first: no spreadsheet exports UTF-32, and read
# as UTF-16 it would become text full of NULs.
_REFUSED_BOMS: Final = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"))
_ENCODINGS: Final = (
    (codecs.BOM_UTF8, "utf-8", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16-be", "UTF-16"),
)


class NotTextError(ValueError):
    """The file stops being text in its encoding at ``offset`` (bytes from the file's start, the BOM included).

    ``lines`` are the whole lines before the line that holds the bad bytes, not yet returned by `TextLines`.
    """

    def __init__(self, encoding: str, offset: int, bad: bytes, lines: list[str]) -> None:
        super().__init__(f"not {encoding} text from byte offset {offset}")
        self.encoding = encoding
        self.offset = offset
        self.bad = bad
        self.lines = lines


class UnsupportedEncodingError(ValueError):
    """The file's BOM names an encoding the import does not read (UTF-32): refused before any line."""

    def __init__(self, encoding: str) -> None:
        super().__init__(
            f"the file is {encoding} (by its byte-order mark), which the import does not read: save it as CSV UTF-8 "
            "(in Excel, File > Save As > 'CSV UTF-8 (Comma delimited) (*.csv)') and upload it again"
        )
        self.encoding = encoding


class TextLines:
    """Decodes an upload's chunks into lines, each with its line ending, holding only the unfinished line."""

    def __init__(self) -> None:
        self.encoding = "UTF-8"
        self._decoder: codecs.IncrementalDecoder | None = None
        self._head = b""  # the first bytes, until the BOM (or its absence) is known
        self._consumed = 0  # bytes of the file handed to the decoder so far
        self._newline: str | None = None  # "\n" (also for "\r\n") or "\r", from the first line ending
        self._tail = ""

    def feed(self, chunk: bytes) -> list[str]:
        if self._decoder is None:
            self._head += chunk
            if len(self._head) < _BOM_BYTES:
                return []
            chunk = self._start()
        return self._split(self._decode(chunk, final=False), final=False)

    def finish(self) -> list[str]:
        chunk = self._start() if self._decoder is None else b""
        return self._split(self._decode(chunk, final=True), final=True)

    def _start(self) -> bytes:
        head, self._head = self._head, b""
        for bom, refused in _REFUSED_BOMS:
            if head.startswith(bom):
                raise UnsupportedEncodingError(refused)
        codec = "utf-8"
        for bom, name, label in _ENCODINGS:
            if head.startswith(bom):
                codec, self.encoding = name, label
                head = head[len(bom) :]
                self._consumed = len(bom)
                break
        self._decoder = codecs.getincrementaldecoder(codec)()
        return head

    def _decode(self, data: bytes, final: bool) -> str:
        assert self._decoder is not None
        buffered = len(self._decoder.getstate()[0])  # an unfinished character kept from the previous chunk
        try:
            text = self._decoder.decode(data, final)
        except UnicodeDecodeError as error:
            # error.object is the kept bytes followed by this chunk: everything before error.start is valid text.
            valid = error.object[: error.start].decode(error.encoding)
            offset = self._consumed - buffered + error.start
            lines = self._split(valid, final=False)
            raise NotTextError(self.encoding, offset, error.object[error.start : error.end], lines) from None
        self._consumed += len(data)
        return text

    def _split(self, text: str, final: bool) -> list[str]:
        text = self._tail + text
        newline = self._newline
        if newline is None:
            newline = _line_ending(text, final)
            if newline is None:
                self._tail = text
                return []
            self._newline = newline
        parts = text.split(newline)
        self._tail = parts.pop()
        lines = [part + newline for part in parts]
        if final and self._tail:
            lines.append(self._tail)
            self._tail = ""
        return lines


def _line_ending(text: str, final: bool) -> str | None:
    """The first line's ending: ``"\\r"`` only when a ``\\r`` is not followed by ``\\n``; None when yet unknown."""
    cr, lf = text.find("\r"), text.find("\n")
    if cr == -1 or (lf != -1 and lf < cr):
        return "\n" if lf != -1 or final else None
    if cr + 1 < len(text):
        return "\n" if text[cr + 1] == "\n" else "\r"
    return "\r" if final else None  # the text ends in "\r": the next chunk may begin with its "\n"
