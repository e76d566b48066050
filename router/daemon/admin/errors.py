"""The admin API's one error: a request it cannot serve, with its HTTP status."""

from __future__ import annotations


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
