"""Structured log lines over the standard library's ``logging``.

Every module logs an event name and keyword fields::

    log = get_logger("pinewood.relay")
    log.info("deposited", to=key.hex(), size=len(envelope))

and the daemon renders each record as one line: JSON (``{"to": ..., "size": ...,
"event": "deposited", "level": "info", "timestamp": ...}``) or, on a terminal,
a readable console line.  Records that libraries log through ``logging``
directly are rendered the same way, with a ``logger`` field naming their source.

``logging`` is loaded with ``asyncio`` in any case; a structured-logging library
beside it cost a node about 2 MiB resident and a tenth of its start-up time,
for the few lines above.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from enum import Enum
from typing import Any, TextIO

FIELDS = "pinewood_fields"
"""The attribute of a :class:`logging.LogRecord` that holds an event's fields."""


class LogFormat(Enum):
    AUTO = "auto"
    CONSOLE = "console"
    JSON = "json"


LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
ROOT = "pinewood"
"""Every logger of the node is below this one; its level is the configured one."""
CONSOLE_EVENT_WIDTH = 32


class Logger:
    """Logs events with fields; ``exc_info`` (an exception, or ``True`` inside an
    ``except`` block) adds the traceback as the ``exception`` field."""

    __slots__ = ("_logger",)

    def __init__(self, name: str) -> None:
        self._logger = logging.getLogger(name)

    def debug(self, event: str, **fields: Any) -> None:
        self._emit(logging.DEBUG, event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._emit(logging.INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit(logging.WARNING, event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._emit(logging.ERROR, event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        fields.setdefault("exc_info", True)
        self._emit(logging.ERROR, event, fields)

    def _emit(self, level: int, event: str, fields: dict[str, Any]) -> None:
        if not self._logger.isEnabledFor(level):
            return
        exc_info = fields.pop("exc_info", None)
        self._logger.log(level, event, exc_info=exc_info, extra={FIELDS: fields}, stacklevel=3)


def get_logger(name: str) -> Logger:
    """``name`` is ``pinewood`` or below it, so the configured level applies."""
    return Logger(name)


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The event's fields as rendered: its own, then ``event``, ``level``, the
    source of a library's record, ``timestamp`` and any ``exception``."""
    own: Mapping[str, Any] | None = getattr(record, FIELDS, None)
    out: dict[str, Any] = dict(own) if own is not None else {}
    out["event"] = record.getMessage()
    out["level"] = record.levelname.lower()
    if own is None:
        out["logger"] = record.name
    seconds = int(record.created)
    micros = int((record.created - seconds) * 1_000_000)
    out["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}Z"
    if record.exc_info:
        out["exception"] = logging.Formatter().formatException(record.exc_info)
    return out


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(fields_of(record), default=repr)


class ConsoleFormatter(logging.Formatter):
    """``timestamp [level   ] event    key=value ...``, then any traceback."""

    def format(self, record: logging.LogRecord) -> str:
        fields = fields_of(record)
        stamp, level, event = fields.pop("timestamp"), fields.pop("level"), fields.pop("event")
        exception = fields.pop("exception", None)
        pairs = " ".join(f"{k}={v if isinstance(v, str) else repr(v)}" for k, v in fields.items())
        line = f"{stamp} [{level:<8}] {event:<{CONSOLE_EVENT_WIDTH}} {pairs}".rstrip()
        return f"{line}\n{exception}" if exception else line


def configure_logging(fmt: LogFormat, level: str, stream: TextIO | None = None) -> None:
    """Our events at ``level`` and above, libraries' at warning and above, one
    line each on ``stream`` (standard error)."""
    out = sys.stderr if stream is None else stream
    console = fmt is LogFormat.CONSOLE or (fmt is LogFormat.AUTO and out.isatty())
    handler = logging.StreamHandler(out)
    handler.setFormatter(ConsoleFormatter() if console else JSONFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(logging.WARNING, LEVELS[level]))
    logging.getLogger(ROOT).setLevel(LEVELS[level])
