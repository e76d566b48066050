from __future__ import annotations

import pytest

from router.daemon.admission import address_bucket
from router.daemon.config import ConfigError, load_config
from router.links.queues import FairQueue
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


def test_admin_must_be_loopback_unless_allowed() -> None:
    with pytest.raises(ConfigError, match="loopback"):
        load_config(environ={"PINEWOOD_ADMIN": "0.0.0.0:1"})
    config = load_config(environ={"PINEWOOD_ADMIN": "0.0.0.0:1", "PINEWOOD_ADMIN_ALLOW_REMOTE": "true"})
    assert config.admin_address == ("0.0.0.0", 1)


def test_fair_queue_bounds_frames_and_bytes_and_alternates() -> None:
    queue = FairQueue(per_source=3, bytes_per_source=250)
    for i in range(5):
        queue.push(1, bytes([i]) * 100)  # only two 100-byte frames fit in 250 bytes
    queue.push(2, b"x")
    assert len(queue) == 3 and queue.dropped == 3
    out: list[bytes] = []
    queue.pop_batch(10_000, out)
    assert [o[:1] for o in out] == [b"\x03", b"x", b"\x04"]  # round-robin between sources
    assert len(queue) == 0
    queue.push(3, b"y")
    assert len(queue) == 1


def test_address_buckets() -> None:
    assert address_bucket("192.0.2.77") == address_bucket("192.0.2.1") == "192.0.2.0/24"
    assert address_bucket("2001:db8::1") == address_bucket("2001:db8::ffff") == "2001:db8::/64"
