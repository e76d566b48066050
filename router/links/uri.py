"""Peer and listen URIs: ``tcp://host:port`` or plain ``host:port``, optionally
``?key=HEX`` to pin the key the other side must prove."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from router.wire.errors import EncodeError
from router.wire.keys import PublicKey, key_from_hex

SCHEMES = ("tcp",)


class URIError(ValueError):
    """A peer URI cannot be used."""


@dataclass(frozen=True, slots=True)
class PeerURI:
    scheme: str
    host: str
    port: int
    key: PublicKey | None = None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        text = f"{self.scheme}://{host}:{self.port}"
        return f"{text}?key={self.key.hex()}" if self.key else text


def parse_peer_uri(text: str) -> PeerURI:
    raw = text.strip()
    if "://" not in raw:
        raw = "tcp://" + raw
    parts = urlsplit(raw)
    if parts.scheme not in SCHEMES:
        raise URIError(f"{text!r}: unsupported scheme {parts.scheme!r} (supported: {', '.join(SCHEMES)})")
    try:
        port = parts.port
    except ValueError:
        raise URIError(f"{text!r}: bad port") from None
    if not parts.hostname or port is None:
        raise URIError(f"{text!r}: expected host:port")
    key = None
    query = parse_qs(parts.query)
    if "key" in query:
        try:
            key = key_from_hex(query["key"][0])
        except EncodeError:
            raise URIError(f"{text!r}: key must be 64 hex characters") from None
    return PeerURI(parts.scheme, parts.hostname, port, key)
