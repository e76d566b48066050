"""Log lines as an operator reads them: one JSON object or console line per event."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from router.logs import LogFormat, configure_logging, get_logger


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root, ours = logging.getLogger(), logging.getLogger("pinewood")
    handlers, levels = root.handlers[:], (root.level, ours.level)
    yield
    root.handlers[:] = handlers
    root.setLevel(levels[0])
    ours.setLevel(levels[1])


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.mark.usefixtures("restore_logging")
def test_json_lines_carry_the_event_its_fields_level_and_time() -> None:
    out = io.StringIO()
    configure_logging(LogFormat.JSON, "info", out)
    get_logger("pinewood.test").info("peer up", port=3, key=b"\x01", uri="tcp://h:1")
    get_logger("pinewood.test").debug("not shown at info")
    [line] = lines(out)
    assert list(line)[:3] == ["port", "key", "uri"]
    assert line["event"] == "peer up" and line["level"] == "info"
    assert line["port"] == 3 and line["key"] == "b'\\x01'" and line["uri"] == "tcp://h:1"
    assert isinstance(line["timestamp"], str) and line["timestamp"].endswith("Z")
    assert "logger" not in line


@pytest.mark.usefixtures("restore_logging")
def test_the_configured_level_applies_to_the_node_not_to_libraries() -> None:
    out = io.StringIO()
    configure_logging(LogFormat.JSON, "debug", out)
    get_logger("pinewood.test").debug("ours")
    logging.getLogger("somelibrary").info("theirs, below warning")
    logging.getLogger("somelibrary").warning("theirs %s", "formatted")
    assert [(line["event"], line.get("logger")) for line in lines(out)] == [
        ("ours", None),
        ("theirs formatted", "somelibrary"),
    ]


@pytest.mark.usefixtures("restore_logging")
def test_an_exception_is_one_field_of_the_same_line() -> None:
    out = io.StringIO()
    configure_logging(LogFormat.JSON, "info", out)
    try:
        raise ValueError("bad input")
    except ValueError as exc:
        get_logger("pinewood.test").error("failed", exc_info=exc)
        get_logger("pinewood.test").exception("failed again")
    first, second = lines(out)
    for line in (first, second):
        assert line["level"] == "error"
        assert isinstance(line["exception"], str) and "ValueError: bad input" in line["exception"]


@pytest.mark.usefixtures("restore_logging")
def test_console_lines_put_the_event_first_then_key_value_pairs() -> None:
    out = io.StringIO()
    configure_logging(LogFormat.CONSOLE, "info", out)
    get_logger("pinewood.test").warning("slow peer", port=7, uri="tcp://h:1")
    [line] = out.getvalue().splitlines()
    stamp, rest = line.split(" ", 1)
    assert stamp.endswith("Z")
    assert rest.startswith("[warning ] slow peer")
    assert rest.endswith("port=7 uri=tcp://h:1")


@pytest.mark.usefixtures("restore_logging")
def test_auto_is_json_when_the_stream_is_not_a_terminal() -> None:
    out = io.StringIO()
    configure_logging(LogFormat.AUTO, "info", out)
    get_logger("pinewood.test").info("hello")
    assert lines(out)[0]["event"] == "hello"
