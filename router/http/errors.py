"""The HTTP layer's error base: every error a :mod:`router.http` module raises derives from it."""

from __future__ import annotations


class HttpError(Exception):
    """HTTP could not be read or answered as asked; the message says why."""
