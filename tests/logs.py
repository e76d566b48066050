"""The node's log events, caught in a test as the dictionaries a JSON line holds."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from router.logs import ROOT, fields_of


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.events: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.events.append(fields_of(record))


@contextmanager
def capture_events() -> Iterator[list[dict[str, Any]]]:
    """Every event of the node's loggers at any level, while the block runs."""
    logger = logging.getLogger(ROOT)
    handler, level = _Collect(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler.events
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
