"""The admin API's one error: a request it cannot serve, with its HTTP status."""

from __future__ import annotations

from router.daemon.errors import DaemonError


class HTTPError(DaemonError):
    """A request the admin API cannot serve, with its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
