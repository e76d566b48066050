"""Server names that stand for node keys: both forms, the suffix, and names that are no key."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.matrix.names import key_for_name, server_name

KEY = bytes(range(32))


@given(st.binary(min_size=32, max_size=32))
def test_each_form_names_its_key(key: bytes) -> None:
    assert key_for_name(server_name(key)) == key
    assert key_for_name(key.hex()) == key
    assert key_for_name(server_name(key, ".p2p"), ".p2p") == key
    assert key_for_name(key.hex() + ".p2p:8448", ".p2p") == key
    assert key_for_name(server_name(key).upper()) == key


@pytest.mark.parametrize(
    "name",
    [
        "matrix.org",
        "a" * 51,
        KEY.hex()[:-1],
        "[::1]:8448",
        server_name(KEY) + ".other",  # a suffix that is not this node's
        server_name(KEY)[:-1] + "b",  # spare bits set: a second spelling of a key is refused
    ],
)
def test_names_that_stand_for_no_key(name: str) -> None:
    assert key_for_name(name, ".p2p") is None


def test_a_key_is_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        server_name(b"short")
