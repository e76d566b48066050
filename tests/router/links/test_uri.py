"""Peer URIs: the schemes and forms accepted, and one error class for all that is not."""

from __future__ import annotations

import pytest

from router.links.uri import URIError, parse_peer_uri


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:1", "tcp://127.0.0.1:1"),
        ("tcp://[::1]:65432", "tcp://[::1]:65432"),
        ("tcp://relay.example.org:7", "tcp://relay.example.org:7"),
        ("ws://127.0.0.1:8", "ws://127.0.0.1:8/"),
        ("wss://peer.example.org:443/pinecone", "wss://peer.example.org:443/pinecone"),
    ],
)
def test_good_uris(text: str, expected: str) -> None:
    assert str(parse_peer_uri(text)) == expected


@pytest.mark.parametrize(
    "text",
    [
        "tcp://[::1:80",
        "udp://x:1",
        "host-without-port",
        "tcp://" + "a" * 64 + ".example:1",
        "tcp://bad_name:1",
        "x:99999",
    ],
)
def test_bad_uris_raise_only_uri_error(text: str) -> None:
    with pytest.raises(URIError):
        parse_peer_uri(text)


def test_pinned_key() -> None:
    uri = parse_peer_uri("tcp://h:1?key=" + "ab" * 32)
    assert uri.key == bytes.fromhex("ab" * 32)
    with pytest.raises(URIError, match="64 hex"):
        parse_peer_uri("tcp://h:1?key=abc")
