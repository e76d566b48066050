"""LAN beacons: their form, and which address a heard beacon is dialled at."""

from __future__ import annotations

import socket
import struct

from router.links.multicast import BeaconProtocol, ipv4_address, ipv4_membership, parse_beacon

KEY = bytes(range(32))


def test_beacon_is_key_then_port() -> None:
    assert parse_beacon(KEY + struct.pack("!H", 4242)) == (KEY, 4242)
    assert parse_beacon(KEY + b"\x10") is None  # too short
    assert parse_beacon(KEY + b"\x00\x00") is None  # no port


def heard_by(addr: tuple[str | int, ...], scope: int = 7) -> list[tuple[bytes, int, str, int]]:
    heard: list[tuple[bytes, int, str, int]] = []
    BeaconProtocol(lambda *args: heard.append(args), scope).datagram_received(KEY + b"\x01\x02", addr)
    return heard


def test_an_ipv4_beacon_is_dialled_at_its_sender() -> None:
    assert heard_by(("10.114.0.2", 60606)) == [(KEY, 0x0102, "10.114.0.2", 7)]


def test_an_ipv6_beacon_keeps_its_zone() -> None:
    assert heard_by(("fe80::1%eth0", 60606, 0, 3)) == [(KEY, 0x0102, "fe80::1", 3)]
    assert heard_by(("fe80::1", 60606, 0, 0)) == [(KEY, 0x0102, "fe80::1", 7)]


def test_ipv4_group_membership_names_the_interface() -> None:
    request = ipv4_membership(5)
    assert request[:4] == socket.inet_aton("224.0.0.114")
    assert request[4:8] == bytes(4)
    assert struct.unpack("@i", request[8:]) == (5,)


def test_ipv4_address_of_an_interface() -> None:
    assert ipv4_address("lo") == "127.0.0.1"
    assert ipv4_address("no-such-if0") is None
