from __future__ import annotations

import pytest

from router.wire import DecodeError, Identity, RootAnnouncement, SignatureError, decode_announcement
from tests.router.wire.keys import K1, K2, K3, K4


def chain(*hops: tuple[int, int]) -> RootAnnouncement:
    """An announcement rooted at K4 (the highest of the test keys is irrelevant here)."""
    ids = {1: K1, 2: K2, 3: K3, 4: K4}
    ann = RootAnnouncement.create(ids[hops[0][0]].public_key, 5)
    for signer, port in hops:
        ann = ann.with_hop(ids[signer], port)
    return ann


def test_properties() -> None:
    ann = chain((1, 4), (2, 7), (3, 1))
    assert ann.coordinates == (4, 7, 1)
    assert ann.sender_coordinates == (4, 7)
    assert ann.sender == K3.public_key
    assert ann.ancestor_parent == K2.public_key
    one = chain((1, 2))
    assert one.ancestor_parent == K1.public_key == one.root_key
    assert RootAnnouncement.create(K1.public_key, 1).sender is None


def test_sanity_check_accepts_a_good_chain() -> None:
    chain((1, 4), (2, 7)).sanity_check(K2.public_key)


@pytest.mark.parametrize(
    ("ann", "sender", "message"),
    [
        (RootAnnouncement.create(K1.public_key, 1), K1, "no hops"),
        (RootAnnouncement.create(K1.public_key, 1).with_hop(K2, 1), K2, "first signer"),
        (chain((1, 4), (2, 7)), K3, "last signer"),
        (chain((1, 4), (2, 7), (1, 3)), K1, "routing loop"),
    ],
)
def test_sanity_check_rejects(ann: RootAnnouncement, sender: Identity, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        ann.sanity_check(sender.public_key)


def test_sanity_check_rejects_port_zero() -> None:
    ann = chain((1, 4))
    # with_hop refuses port 0, so forge it on the wire: the root key, then
    # sequence 5, then a hop whose port byte is 0 signed by K1.
    raw = ann.raw[:33] + b"\x00" + K1.public_key + K1.sign(ann.raw[:33])
    forged = decode_announcement(raw)
    with pytest.raises(DecodeError, match="port 0"):
        forged.sanity_check(K1.public_key)


def test_loop_or_child() -> None:
    ann = chain((1, 4), (2, 7))
    assert ann.is_loop_or_child_of(K2.public_key)
    assert not ann.is_loop_or_child_of(K3.public_key)


def test_incremental_verification_checks_only_new_hops() -> None:
    good = chain((1, 4), (2, 7))
    # Corrupt the *first* signature but keep the structure: a router that
    # already verified the first hop and checks from hop 1 accepts it, a full
    # check does not.  This is exactly why incremental checks need a verified prefix.
    bad_sig = bytes(64)
    first = good.hops[0]
    sig_at = first.signed_length + 1 + 32
    raw = good.raw[:sig_at] + bad_sig + good.raw[sig_at + 64 :]
    forged = decode_announcement(raw, verify=False)
    with pytest.raises(SignatureError, match="signature 0"):
        forged.verify_hops()
    with pytest.raises(SignatureError, match="signature 1"):
        forged.verify_hops(1)  # hop 1 signed the original hop-0 bytes, not these
    good.verify_hops(1)


def test_truncated_hop() -> None:
    ann = chain((1, 4), (2, 7))
    for cut in range(1, 97):
        with pytest.raises(DecodeError):
            decode_announcement(ann.raw[:-cut])
    with pytest.raises(DecodeError, match="truncated"):
        decode_announcement(ann.raw[:32])


def test_each_hops_signature_is_read_from_the_wire_bytes() -> None:
    ann = chain((1, 4), (2, 300), (3, 1))
    signers = (K1, K2, K3)
    for index, hop in enumerate(ann.hops):
        assert ann.signature(index) == signers[index].sign(ann.raw[: hop.signed_length])
    decoded = decode_announcement(ann.raw)
    assert [decoded.signature(i) for i in range(3)] == [ann.signature(i) for i in range(3)]
