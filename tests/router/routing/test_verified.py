from __future__ import annotations

from collections.abc import Callable

import pytest

from router.routing.verified import VerifiedAnnouncements
from router.wire import RootAnnouncement, SignatureError, decode_announcement
from tests.router.wire.keys import K1, K2, K3, K4


def test_only_new_hops_are_checked() -> None:
    cache = VerifiedAnnouncements()
    base = RootAnnouncement.create(K4.public_key, 1).with_hop(K4, 1).with_hop(K1, 2)
    cache.verify(base)
    assert (cache.signatures_checked, cache.signatures_skipped) == (2, 0)
    longer = base.with_hop(K2, 3).with_hop(K3, 4)
    cache.verify(longer)
    assert (cache.signatures_checked, cache.signatures_skipped) == (4, 2)
    cache.verify(longer)  # seen whole: nothing to check
    assert (cache.signatures_checked, cache.signatures_skipped) == (4, 6)


def test_a_forged_hop_after_a_known_prefix_is_caught() -> None:
    cache = VerifiedAnnouncements()
    base = RootAnnouncement.create(K4.public_key, 1).with_hop(K4, 1)
    cache.verify(base)
    good = base.with_hop(K1, 2)
    forged = decode_announcement(good.raw[:-64] + bytes(64), verify=False)
    with pytest.raises(SignatureError):
        cache.verify(forged)


def test_a_prefix_with_other_bytes_is_not_trusted() -> None:
    cache = VerifiedAnnouncements()
    cache.verify(RootAnnouncement.create(K4.public_key, 1).with_hop(K4, 1).with_hop(K1, 2))
    # same signers and signatures, but the first hop's port differs: its bytes are new
    other = RootAnnouncement.create(K4.public_key, 1).with_hop(K4, 9)
    tampered = decode_announcement(
        other.raw + (2).to_bytes(1, "big") + K1.public_key + bytes(64), verify=False
    )
    with pytest.raises(SignatureError):
        cache.verify(tampered)


def test_bounded() -> None:
    cache = VerifiedAnnouncements(capacity=3)
    for port in range(1, 11):
        cache.verify(RootAnnouncement.create(K4.public_key, 1).with_hop(K4, port))
    assert len(cache) == 3


def test_least_recently_used_is_forgotten_first() -> None:
    cache = VerifiedAnnouncements(capacity=3)
    first = RootAnnouncement.create(K4.public_key, 1).with_hop(K4, 1)
    cache.verify(first)
    for port in (2, 3):
        cache.verify(RootAnnouncement.create(K4.public_key, 1).with_hop(K4, port))
    cache.verify(first)  # used again: now the most recent
    cache.verify(RootAnnouncement.create(K4.public_key, 1).with_hop(K4, 4))  # evicts port 2
    checked = cache.signatures_checked
    cache.verify(first)
    assert cache.signatures_checked == checked  # still known
    cache.verify(RootAnnouncement.create(K4.public_key, 1).with_hop(K4, 2))
    assert cache.signatures_checked == checked + 1  # forgotten, checked again


def test_a_newer_sequence_from_a_root_retires_its_older_prefixes() -> None:
    cache = VerifiedAnnouncements()
    old = RootAnnouncement.create(K4.public_key, 1).with_hop(K4, 1).with_hop(K1, 2)
    other_root = RootAnnouncement.create(K3.public_key, 1).with_hop(K3, 1)
    cache.verify(old)
    cache.verify(other_root)
    assert len(cache) == 3
    cache.verify(RootAnnouncement.create(K4.public_key, 2).with_hop(K4, 1))
    assert len(cache) == 2  # K4's sequence 2 and K3's sequence 1
    checked = cache.signatures_checked
    cache.verify(old)  # a late copy of the old sequence: checked whole, not kept
    assert cache.signatures_checked == checked + 2
    assert len(cache) == 2
    cache.verify(other_root)
    assert cache.signatures_checked == checked + 2  # another root's prefixes stay


def test_the_caller_is_asked_for_the_unverified_hops_only() -> None:
    cache = VerifiedAnnouncements()
    base = RootAnnouncement.create(K4.public_key, 1).with_hop(K4, 1).with_hop(K1, 2)
    asked: list[int] = []

    def answer(allowed: bool) -> Callable[[int], bool]:
        def afford(checks: int) -> bool:
            asked.append(checks)
            return allowed

        return afford

    assert not cache.verify(base, answer(False))
    assert asked == [2] and cache.signatures_checked == 0  # refused: nothing checked
    assert cache.verify(base, answer(True))
    longer = base.with_hop(K2, 3).with_hop(K3, 4)
    assert cache.verify(longer, answer(True))
    assert cache.verify(longer, answer(True))  # nothing new: not asked
    assert asked == [2, 2, 2]
    assert cache.signatures_checked == 4


def test_the_prefixes_of_roots_nobody_announces_are_forgotten() -> None:
    cache = VerifiedAnnouncements()
    weak = RootAnnouncement.create(K1.public_key, 1).with_hop(K1, 1).with_hop(K2, 2)
    strong = RootAnnouncement.create(K4.public_key, 3).with_hop(K4, 1)
    cache.verify(weak)
    cache.verify(strong)
    assert len(cache) == 3
    assert cache.keep_only({(K4.public_key, 3)}) == 2
    assert len(cache) == 1
    checked = cache.signatures_checked
    cache.verify(strong)
    assert cache.signatures_checked == checked  # the root in use is still known
    cache.verify(weak)
    assert cache.signatures_checked == checked + 2  # forgotten: checked again, and kept again
    assert len(cache) == 3
    assert cache.keep_only({(K4.public_key, 3), (K1.public_key, 1)}) == 0
