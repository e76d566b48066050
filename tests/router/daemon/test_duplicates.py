"""Which of two peerings dialled at once is closed: both ends must agree."""

from __future__ import annotations

import socket
from collections import Counter
from dataclasses import replace
from typing import cast

from hypothesis import given
from hypothesis import strategies as st

from router.daemon.duplicates import PeeringFacts, duplicate_to_close, normal_host
from router.daemon.lan import LanPeers
from router.daemon.transports import Transports
from router.wire.keys import PublicKey

LOW, HIGH = b"\x01" * 32, b"\xfe" * 32


def facts(ident: int, own: bytes, peer: bytes, outbound: bool, **changes: object) -> PeeringFacts:
    """A peering as the node with key ``own`` sees it (addresses from its side)."""
    hosts = ("10.0.0.1", "10.0.0.2") if own == LOW else ("10.0.0.2", "10.0.0.1")
    base = PeeringFacts(ident, peer, outbound, "tcp", hosts[0], hosts[1], True)
    return replace(base, **changes)  # type: ignore[arg-type]


def closed_by(own: bytes, peer: bytes, first_outbound: bool) -> bool | None:
    """Which direction (True: the one ``own`` dialled) ``own`` closes, its
    peerings established in the order given; None if it closes none."""
    first = facts(1, own, peer, first_outbound)
    second = facts(2, own, peer, not first_outbound)
    pair = duplicate_to_close(second, [first], own)
    if pair is None:
        return None
    closed, kept = pair
    assert {closed.ident, kept.ident} == {1, 2}
    return closed.outbound


def test_both_ends_close_the_peering_the_higher_key_dialled_whatever_the_order() -> None:
    for low_first in (True, False):
        for high_first in (True, False):
            # The low key closes its inbound peering (the one the high key dialled),
            # the high key its outbound one: the same connection.
            assert closed_by(LOW, HIGH, low_first) is False
            assert closed_by(HIGH, LOW, high_first) is True


def test_different_links_kinds_or_directions_are_not_duplicates() -> None:
    old = facts(1, LOW, HIGH, True)
    new = facts(2, LOW, HIGH, False)
    assert duplicate_to_close(replace(new, kind="ws"), [old], LOW) is None
    assert duplicate_to_close(replace(new, remote_host="10.0.1.2"), [old], LOW) is None
    assert duplicate_to_close(replace(new, local_host="10.0.1.1"), [old], LOW) is None
    assert duplicate_to_close(replace(new, key=b"\x02" * 32), [old], LOW) is None
    assert duplicate_to_close(replace(new, outbound=True), [old], LOW) is None  # both ours: not a race


def test_only_between_nodes_that_both_announce_the_extension() -> None:
    old = facts(1, LOW, HIGH, True)
    new = facts(2, LOW, HIGH, False)
    assert duplicate_to_close(replace(new, one_peering=False), [old], LOW) is None
    assert duplicate_to_close(new, [replace(old, one_peering=False)], LOW) is None
    assert duplicate_to_close(new, [old], LOW) == (new, old)


def test_addresses_compare_in_one_form() -> None:
    assert normal_host("::ffff:10.0.0.2") == "10.0.0.2"
    assert normal_host("[fe80::1%eth0]") == "fe80::1"
    assert normal_host("FE80::0001") == "fe80::1"
    assert normal_host("not an address") == "not an address"
    old = facts(1, LOW, HIGH, True, remote_host="10.0.0.2")
    new = facts(2, LOW, HIGH, False, remote_host="::ffff:10.0.0.2")
    assert duplicate_to_close(new, [old], LOW) == (new, old)


@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32), st.booleans(), st.booleans())
def test_any_two_keys_agree_on_the_connection_to_close(
    a: bytes, b: bytes, a_first: bool, b_first: bool
) -> None:
    if a == b:
        return
    # Connection X was dialled by a, Y by b.  a sees X outbound, b sees X inbound.
    a_closes = closed_by(a, b, a_first)
    b_closes = closed_by(b, a, b_first)
    assert a_closes is not None and b_closes is not None
    a_closes_x = a_closes  # a's outbound is X
    b_closes_x = not b_closes  # b's inbound is X
    assert a_closes_x == b_closes_x
    assert a_closes_x == (a > b)  # the higher key's dial goes


def test_lan_peerings_over_one_interface_are_duplicates_whatever_the_family() -> None:
    # One end dialled the other's IPv6 link-local address, the other end the
    # first one's IPv4 address, at the same moment: one interface, one link.
    old = facts(1, LOW, HIGH, True, kind="multicast", local_host="fe80::1", remote_host="fe80::2")
    new = facts(2, LOW, HIGH, False, kind="multicast", local_host="::ffff:10.0.0.1", remote_host="10.0.0.2")
    assert duplicate_to_close(new, [old], LOW) is None  # by addresses alone: two links
    on_eth0 = duplicate_to_close(replace(new, interface="eth0"), [replace(old, interface="eth0")], LOW)
    assert on_eth0 is not None and {on_eth0[0].ident, on_eth0[1].ident} == {1, 2}
    # Two interfaces to the same neighbour are two links, as the reference allows.
    assert duplicate_to_close(replace(new, interface="wlan0"), [replace(old, interface="eth0")], LOW) is None


def test_the_interface_of_our_end_of_a_lan_peering() -> None:
    lan = LanPeers(PublicKey(LOW), cast(Transports, None), set, Counter())
    lan.interfaces = ["lo"]
    assert lan.interface_of("127.0.0.1", 0) == "lo"
    assert lan.interface_of("::ffff:127.0.0.1", 0) == "lo"
    assert lan.interface_of("192.0.2.1", 0) is None  # on no allowed interface
    assert lan.interface_of("fe80::1", socket.if_nametoindex("lo")) == "lo"
    lan.interfaces = ["eth-none"]
    assert lan.interface_of("127.0.0.1", 0) is None
