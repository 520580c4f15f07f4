"""Service logs: JSON lines that carry what an operator needs to find a failure."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from shared.observability import configure_logging


@pytest.fixture
def service_logging() -> Iterator[None]:
    """configure_logging for one test; the root logger and structlog as they were afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()


def _raise_overflow() -> None:
    raise OverflowError("date value out of range")


def test_an_error_logged_by_a_library_carries_its_formatted_traceback(
    service_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("feedback")
    try:
        _raise_overflow()
    except OverflowError:
        # How uvicorn reports an exception that escaped the app (the 500's "the error is in its log").
        logging.getLogger("uvicorn.error").error("Exception in ASGI application\n", exc_info=True)
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["service"] == "feedback"
    assert line["level"] == "error"
    # The traceback as text, down to the line that raised: not the repr of a traceback object.
    assert "Traceback (most recent call last)" in line["exception"]
    assert "_raise_overflow" in line["exception"]
    assert "OverflowError: date value out of range" in line["exception"]
    assert "exc_info" not in line


def test_an_error_logged_through_structlog_carries_its_formatted_traceback(
    service_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("profiles")
    try:
        _raise_overflow()
    except OverflowError:
        structlog.get_logger().exception("handler failed")
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "OverflowError: date value out of range" in line["exception"]
