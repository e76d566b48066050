"""Structured logs through structlog: readable console lines on a terminal, JSON
otherwise.  What libraries log through the standard ``logging`` module (warnings
and errors) goes through the same renderer, so in JSON mode every line is JSON."""

from __future__ import annotations

import logging
import sys

import structlog

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class ToStructlog(logging.Handler):
    """Hands the standard library's log records to structlog."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            logger = structlog.get_logger(record.name)
            if record.exc_info:
                logger.log(record.levelno, record.getMessage(), logger=record.name, exc_info=record.exc_info)
            else:
                logger.log(record.levelno, record.getMessage(), logger=record.name)
        except Exception:
            self.handleError(record)


def configure_logging(fmt: str, level: str) -> None:
    """``fmt`` is ``auto`` (console if stderr is a terminal), ``console`` or ``json``."""
    console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer() if console else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger()
    root.handlers[:] = [ToStructlog()]
    root.setLevel(max(logging.WARNING, LEVELS[level]))
