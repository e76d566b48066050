"""The QUIC engine layer's error base."""

from __future__ import annotations


class QuicEngineError(Exception):
    """The installed aioquic lacks something the engine relies on; the message
    names the aioquic release and what is missing."""
