"""The relay layer's error base: every error the relay modules raise derives from it."""

from __future__ import annotations


class RelayError(Exception):
    """A relay request, record, envelope or store operation failed; the message says why."""
