"""The QUIC engine layer's error base."""

from __future__ import annotations


class QuicEngineError(Exception):
    """A QUIC engine is unknown, not installed, or lacks something Pinewood relies
    on; the message names the engine's release and what is missing."""
