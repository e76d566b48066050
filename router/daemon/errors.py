"""The daemon layer's error base: every error the daemon's modules raise derives from it."""

from __future__ import annotations


class DaemonError(Exception):
    """The node cannot do what it was asked (a setting, a key file, a request); the message says why."""


class StartupError(DaemonError):
    """The node cannot start as configured; the message names the setting and what to do."""
