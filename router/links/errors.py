"""The links layer's error base: every error a link module raises derives from it."""

from __future__ import annotations


class LinkError(Exception):
    """A peering could not be set up or carried."""
