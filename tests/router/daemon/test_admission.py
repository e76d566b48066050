"""Handshake admission: the address buckets that rate limits count by."""

from __future__ import annotations

from router.daemon.admission import address_bucket


def test_address_buckets() -> None:
    assert address_bucket("192.0.2.77") == address_bucket("192.0.2.1") == "192.0.2.0/24"
    assert address_bucket("2001:db8::1") == address_bucket("2001:db8::ffff") == "2001:db8::/64"
