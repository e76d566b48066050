"""The extension frame: path notices round-trip, and anything else is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.wire import DecodeError, EncodeError, PublicKey
from router.wire.extension import (
    EXTENSION_FRAME_TYPE,
    MAX_NEIGHBOURS,
    Direction,
    Extension,
    Neighbours,
    NeighboursGone,
    PathConfirmed,
    PathNotice,
    decode_extension,
    encode_extension,
    encode_neighbours,
    encode_neighbours_gone,
    encode_path_notice,
    encode_path_word,
    extension_names,
    frame_type_name,
    is_extension_frame,
)
from router.wire.frames import FrameType
from tests.router.wire.strategies import keys, u64

notices = st.builds(PathNotice, st.sampled_from(list(Direction)), keys, u64)
ORIGIN = PublicKey(bytes(range(32)))


@given(notices)
def test_a_path_notice_round_trips(notice: PathNotice) -> None:
    raw = encode_path_notice(notice)
    assert is_extension_frame(raw)
    assert decode_extension(raw) == notice


def test_the_layout_is_the_ordinary_header_then_kind_direction_origin_sequence() -> None:
    raw = encode_path_notice(PathNotice(Direction.TOWARDS_END, ORIGIN, 300))
    assert raw[:4] == b"pine" and raw[4] == 0 and raw[5] == EXTENSION_FRAME_TYPE == 0x20
    assert raw[6:8] == b"\0\0"  # no extra byte, no hop limit: it goes one hop
    assert int.from_bytes(raw[8:10], "big") == len(raw) == 10 + 2 + 1 + 1 + 32 + 2
    assert int.from_bytes(raw[10:12], "big") == len(raw) - 12
    assert raw[12:14] == b"\x01\x01"  # kind 1 (path notice), towards the end
    assert raw[14:46] == ORIGIN
    assert raw[46:] == bytes((0x82, 0x2C))  # 300 as a varu64


def good() -> bytearray:
    return bytearray(encode_path_notice(PathNotice(Direction.TOWARDS_ORIGIN, ORIGIN, 7)))


def with_lengths(raw: bytearray) -> bytes:
    raw[8:10] = len(raw).to_bytes(2, "big")
    raw[10:12] = (len(raw) - 12).to_bytes(2, "big")
    return bytes(raw)


def changed(at: int, value: int) -> bytes:
    raw = good()
    raw[at] = value
    return bytes(raw)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (changed(12, 9), "unknown extension kind 9"),
        (changed(13, 2), "direction 2"),
        (changed(6, 1), "extra byte or hop limit"),
        (changed(7, 1), "extra byte or hop limit"),
        (changed(9, 99), "length field"),
        (changed(11, 1), "payload length"),
        (with_lengths(good() + b"\0"), "trailing bytes"),
        (with_lengths(good()[:-2]), "truncated"),
        (changed(5, 3), "not an extension frame"),
    ],
)
def test_a_malformed_extension_frame_is_refused(raw: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_extension(raw)


def test_an_origin_of_the_wrong_size_cannot_be_sent() -> None:
    with pytest.raises(EncodeError, match="32 bytes"):
        encode_path_notice(PathNotice(Direction.TOWARDS_END, PublicKey(b"short"), 1))


def test_extension_names_are_the_settings_words() -> None:
    assert extension_names(Extension.PATH_REPAIR | 0x800000) == ["path-repair"]
    assert extension_names(Extension.PATH_REPAIR | Extension.LOOKAHEAD) == ["path-repair", "lookahead"]
    assert extension_names(0) == []


claims = st.lists(st.binary(max_size=300), max_size=MAX_NEIGHBOURS).map(tuple)


@given(claims)
def test_neighbours_round_trip(announcements: tuple[bytes, ...]) -> None:
    raw = encode_neighbours(Neighbours(announcements))
    assert raw[5] == EXTENSION_FRAME_TYPE and raw[12] == 2 and raw[13] == len(announcements)
    assert decode_extension(raw) == Neighbours(announcements)


@given(st.lists(keys, max_size=MAX_NEIGHBOURS).map(tuple))
def test_neighbours_gone_round_trip(gone: tuple[PublicKey, ...]) -> None:
    raw = encode_neighbours_gone(NeighboursGone(gone))
    assert len(raw) == 14 + 32 * len(gone)
    assert decode_extension(raw) == NeighboursGone(gone)


@given(st.builds(PathConfirmed, keys, u64))
def test_a_path_confirmation_round_trips(message: PathConfirmed) -> None:
    raw = encode_path_word(message)
    assert raw == encode_extension(message)
    assert decode_extension(raw) == message


def test_a_path_confirmation_is_kind_4_then_origin_and_sequence() -> None:
    raw = encode_path_word(PathConfirmed(ORIGIN, 300))
    assert len(raw) == 10 + 2 + 1 + 32 + 2
    assert raw[12] == 4 and raw[13:45] == ORIGIN and raw[45:] == bytes((0x82, 0x2C))
    with pytest.raises(EncodeError, match="32 bytes"):
        encode_path_word(PathConfirmed(PublicKey(b"short"), 1))


@pytest.mark.parametrize(("cut", "message"), [(1, "truncated"), (3, "truncated"), (-1, "trailing bytes")])
def test_a_malformed_path_confirmation_is_refused(cut: int, message: str) -> None:
    whole = bytearray(encode_path_word(PathConfirmed(ORIGIN, 300)))
    raw = whole + b"\0" if cut < 0 else whole[:-cut]
    with pytest.raises(DecodeError, match=message):
        decode_extension(with_lengths(raw))


def test_more_neighbours_than_a_frame_may_hold_are_refused_both_ways() -> None:
    with pytest.raises(EncodeError, match="at most 64"):
        encode_neighbours(Neighbours((b"",) * (MAX_NEIGHBOURS + 1)))
    raw = bytearray(encode_neighbours(Neighbours((b"",) * MAX_NEIGHBOURS)))
    raw[13] = MAX_NEIGHBOURS + 1
    with pytest.raises(DecodeError, match="more than 64"):
        decode_extension(bytes(raw))
    with pytest.raises(EncodeError, match="exceeds"):
        encode_neighbours(Neighbours((bytes(40_000), bytes(40_000))))


@pytest.mark.parametrize("cut", [1, 2, 5])
def test_a_truncated_neighbours_frame_is_refused(cut: int) -> None:
    whole = bytearray(encode_neighbours(Neighbours((b"abcdef", b"xyz"))))
    short = whole[:-cut]
    short[8:10] = len(short).to_bytes(2, "big")
    short[10:12] = (len(short) - 12).to_bytes(2, "big")
    with pytest.raises(DecodeError, match="truncated"):
        decode_extension(bytes(short))


def test_frame_type_names_cover_every_type_and_the_unknown() -> None:
    assert [frame_type_name(int(t)) for t in FrameType] == [
        "keepalive",
        "tree_announcement",
        "bootstrap",
        "traffic",
        "wakeup_broadcast",
    ]
    assert frame_type_name(EXTENSION_FRAME_TYPE) == "extension"
    assert frame_type_name(0x7F) == "type 127"
