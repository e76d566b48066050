"""The wire layer's errors.

Everything malformed that arrives from a peer raises :class:`DecodeError`; asking
the codec to build something the protocol cannot carry raises
:class:`EncodeError`.  Both are :class:`WireError`, itself a :class:`ValueError`,
so callers that only care about "bad bytes or bad values" catch one class.
"""

from __future__ import annotations


class WireError(ValueError):
    """Base class of every error raised by :mod:`router.wire`."""


class DecodeError(WireError):
    """The peer sent bytes that are not a valid Pinecone v1 structure."""


class EncodeError(WireError):
    """The caller asked for a structure the wire format cannot represent."""


class SignatureError(DecodeError):
    """A structure parsed correctly but one of its ed25519 signatures is invalid."""
