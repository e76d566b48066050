"""The gateway layer's error base: every error a gateway module raises derives from it."""

from __future__ import annotations


class GatewayError(Exception):
    """The gateway could not do what was asked: its CA's files are unusable, a
    tunnel broke, or the proxy refused a request; the message says why."""
