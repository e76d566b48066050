"""Peer and listen URIs: ``tcp://host:port`` (or plain ``host:port``), ``tls://``,
``ws://`` and ``wss://`` (with an optional path), ``quic://``; optionally
``?key=HEX`` to pin the key the other side must prove."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from router.links.errors import LinkError
from router.wire.errors import EncodeError
from router.wire.keys import PublicKey, key_from_hex

SCHEMES = ("tcp", "tls", "ws", "wss", "quic")
WEBSOCKET_SCHEMES = ("ws", "wss")


class URIError(LinkError, ValueError):
    """A peer URI cannot be used."""


@dataclass(frozen=True, slots=True)
class PeerURI:
    scheme: str
    host: str
    port: int
    key: PublicKey | None = None
    path: str = ""

    def __str__(self) -> str:
        text = self.websocket_url if self.scheme in WEBSOCKET_SCHEMES else f"{self.scheme}://{self._hostport}"
        return f"{text}?key={self.key.hex()}" if self.key else text

    @property
    def _hostport(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def websocket_url(self) -> str:
        return f"{self.scheme}://{self._hostport}{self.path or '/'}"


def parse_peer_uri(text: str) -> PeerURI:
    raw = text.strip()
    if "://" not in raw:
        raw = "tcp://" + raw
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        raise URIError(f"{text!r}: expected scheme://host:port") from None
    if parts.scheme not in SCHEMES:
        raise URIError(f"{text!r}: unsupported scheme {parts.scheme!r} (supported: {', '.join(SCHEMES)})")
    host = parts.hostname
    if not host or port is None:
        raise URIError(f"{text!r}: expected host:port")
    if not _valid_host(host):
        raise URIError(f"{text!r}: {host!r} is not an IP address or a DNS name")
    key = None
    query = parse_qs(parts.query)
    if "key" in query:
        try:
            key = key_from_hex(query["key"][0])
        except EncodeError:
            raise URIError(f"{text!r}: key must be 64 hex characters") from None
    return PeerURI(parts.scheme, host, port, key, parts.path if parts.scheme in WEBSOCKET_SCHEMES else "")


_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)", re.IGNORECASE)


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    name = host.rstrip(".")
    return 0 < len(name) <= 253 and all(_LABEL.fullmatch(label) for label in name.split("."))
