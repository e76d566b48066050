"""Conformance with bytes produced by the reference implementation (Go).

Every entry of ``pinecone-v1.json`` must decode to the documented fields and
re-encode to the identical bytes; every signature in it must verify, and
flipping any single bit of a signed region must make verification fail.
"""

from __future__ import annotations

from typing import Any

import pytest

from router.wire import (
    FULL_MASK,
    FULL_WATERMARK,
    BootstrapFrame,
    DecodeError,
    Identity,
    Keepalive,
    PublicKey,
    RootAnnouncement,
    SignatureError,
    TrafficFrame,
    TreeAnnouncementFrame,
    WakeupBroadcastFrame,
    Watermark,
    build_handshake,
    decode_announcement,
    decode_bootstrap,
    decode_coordinates,
    decode_frame,
    decode_varu64,
    decode_wakeup,
    encode_coordinates,
    encode_frame,
    encode_varu64,
    parse_handshake,
    sign_bootstrap,
    sign_wakeup,
    traffic_route,
    tree_distance,
)

Vectors = dict[str, Any]


def keys(vectors: Vectors) -> list[PublicKey]:
    return [PublicKey(bytes.fromhex(k["public_key"])) for k in vectors["keys"]]


def identities(vectors: Vectors) -> list[Identity]:
    return [Identity.from_seed(bytes.fromhex(k["seed"])) for k in vectors["keys"]]


def bit_flips(data: bytes, start: int, end: int) -> list[bytes]:
    """Every copy of ``data`` with exactly one bit of ``data[start:end]`` flipped."""
    out = []
    for i in range(start, end):
        for bit in range(8):
            flipped = bytearray(data)
            flipped[i] ^= 1 << bit
            out.append(bytes(flipped))
    return out


def test_keys_derive_from_seeds(vectors: Vectors) -> None:
    assert [i.public_key for i in identities(vectors)] == keys(vectors)


def test_varu64(vectors: Vectors) -> None:
    for entry in vectors["varu64"]:
        value, raw = int(entry["value"]), bytes.fromhex(entry["hex"])
        assert encode_varu64(value) == raw
        assert decode_varu64(raw) == (value, len(raw))


def test_coordinates(vectors: Vectors) -> None:
    for entry in vectors["coordinates"]:
        raw = bytes.fromhex(entry["hex"])
        assert encode_coordinates(entry["ports"]) == raw
        assert decode_coordinates(raw) == (tuple(entry["ports"]), len(raw))


def test_distance(vectors: Vectors) -> None:
    for entry in vectors["distance"]:
        assert tree_distance(entry["a"], entry["b"]) == entry["distance"]
        assert tree_distance(entry["b"], entry["a"]) == entry["distance"]


def test_handshake(vectors: Vectors) -> None:
    entry = vectors["handshake"]
    raw = bytes.fromhex(entry["hex"])
    identity = Identity.from_seed(bytes.fromhex(entry["seed"]))
    assert build_handshake(identity) == raw  # ed25519 is deterministic
    parsed = parse_handshake(raw)
    assert (parsed.version, parsed.capabilities, parsed.public_key) == (1, 0x3B, identity.public_key)
    for flipped in bit_flips(raw, 0, 40):
        with pytest.raises(DecodeError):
            parse_handshake(flipped)
    for flipped in bit_flips(raw, 40, 104)[::7]:
        with pytest.raises(DecodeError):
            parse_handshake(flipped)


def test_announcement(vectors: Vectors) -> None:
    entry = vectors["announcement"]
    pks, ids = keys(vectors), identities(vectors)
    payload = bytes.fromhex(entry["payload_hex"])
    frame_raw = bytes.fromhex(entry["frame_hex"])

    frame = decode_frame(frame_raw)
    assert frame == TreeAnnouncementFrame(payload)
    assert encode_frame(frame) == frame_raw

    ann = decode_announcement(payload)  # verifies every hop
    assert ann.root_key == pks[0]
    assert ann.root_sequence == entry["root_sequence"]
    assert [h.port for h in ann.hops] == entry["ports"]
    assert [h.signer for h in ann.hops] == [pks[i] for i in entry["signers"]]
    assert list(ann.coordinates) == entry["coords"]
    ann.sanity_check(pks[entry["signers"][-1]])

    rebuilt = RootAnnouncement.create(pks[0], entry["root_sequence"])
    for port, signer in zip(entry["ports"], entry["signers"], strict=True):
        rebuilt = rebuilt.with_hop(ids[signer], port)
    assert rebuilt.raw == payload
    assert rebuilt == ann


def test_announcement_bit_flips_fail_verification(vectors: Vectors) -> None:
    payload = bytes.fromhex(vectors["announcement"]["payload_hex"])
    ann = decode_announcement(payload)
    last = ann.hops[-1]
    port_end = last.signed_length + len(encode_varu64(last.port))
    # Each hop's signature covers every byte before that hop; its signer key is
    # bound by verification itself.  So every bit is protected except the last
    # hop's own port, which no signature covers yet: the receiver trusts it
    # because it arrived directly from that signer's link, and the next hop's
    # signature will cover it.
    for flipped in bit_flips(payload, 0, last.signed_length) + bit_flips(payload, port_end, len(payload)):
        with pytest.raises(DecodeError):
            decode_announcement(flipped)
    unsigned = bit_flips(payload, last.signed_length, port_end)
    assert decode_announcement(unsigned[8]).hops[-1].port == last.port ^ 1


def test_bootstrap(vectors: Vectors) -> None:
    entry = vectors["bootstrap"]
    pks, ids = keys(vectors), identities(vectors)
    payload = bytes.fromhex(entry["payload_hex"])
    raw = bytes.fromhex(entry["frame_hex"])
    signer = pks[entry["signer"]]

    frame = decode_frame(raw)
    expected = BootstrapFrame(
        signer,
        Watermark(pks[entry["watermark_key_index"]], entry["watermark_sequence"]),
        payload,
        hop_limit=entry["hop_limit"],
    )
    assert frame == expected
    assert encode_frame(expected) == raw

    body = decode_bootstrap(payload, signer=signer)
    assert (body.sequence, body.root_key, body.root_sequence) == (
        entry["sequence"],
        pks[entry["root_key_index"]],
        entry["root_sequence"],
    )
    resigned = sign_bootstrap(ids[entry["signer"]], body.sequence, body.root_key, body.root_sequence)
    assert resigned.encode() == payload
    for flipped in bit_flips(payload, 0, len(payload)):
        with pytest.raises(DecodeError):
            decode_bootstrap(flipped, signer=signer)
    with pytest.raises(SignatureError):
        decode_bootstrap(payload, signer=pks[0])


def test_traffic(vectors: Vectors) -> None:
    pks = keys(vectors)
    for entry in vectors["traffic"]:
        raw = bytes.fromhex(entry["frame_hex"])
        watermark = FULL_WATERMARK
        if "watermark" in entry:
            assert entry["watermark"] == "full_mask/0"
            watermark = Watermark(FULL_MASK, 0)
        expected = TrafficFrame(
            tuple(entry["dest_coords"]),
            tuple(entry["source_coords"]),
            pks[entry["dest_key_index"]],
            pks[entry["source_key_index"]],
            entry["payload"].encode(),
            watermark,
            hop_limit=entry["hop_limit"],
        )
        assert decode_frame(raw) == expected
        assert encode_frame(expected) == raw
        route = traffic_route(raw)
        assert route.destination_key == expected.destination_key
        assert decode_coordinates(encode_coordinates(expected.destination))[0] == expected.destination
        assert (route.watermark_offset >= 0) == (not entry["dest_coords"])


def test_keepalive(vectors: Vectors) -> None:
    raw = bytes.fromhex(vectors["keepalive"]["frame_hex"])
    assert decode_frame(raw) == Keepalive()
    assert encode_frame(Keepalive()) == raw


def test_wakeup_broadcast(vectors: Vectors) -> None:
    entry = vectors["wakeup_broadcast"]
    pks, ids = keys(vectors), identities(vectors)
    raw = bytes.fromhex(entry["frame_hex"])
    payload = bytes.fromhex(entry["payload_hex"])
    signer = pks[entry["signer"]]
    frame = decode_frame(raw)
    assert isinstance(frame, WakeupBroadcastFrame)
    assert frame.source_key == signer and frame.payload == payload
    assert encode_frame(frame) == raw
    body = decode_wakeup(payload, signer=signer)
    assert (body.sequence, body.root_key, body.root_sequence) == (
        entry["sequence"],
        pks[entry["root_key_index"]],
        entry["root_sequence"],
    )
    assert (
        sign_wakeup(ids[entry["signer"]], body.sequence, body.root_key, body.root_sequence).encode()
        == payload
    )
    for flipped in bit_flips(payload, 0, len(payload)):
        with pytest.raises(DecodeError):
            decode_wakeup(flipped, signer=signer)


def test_watermark_order(vectors: Vectors) -> None:
    for entry in vectors["watermark_worse_than"]:
        a = Watermark(PublicKey(bytes.fromhex(entry["a_key"])), entry["a_seq"])
        b = Watermark(PublicKey(bytes.fromhex(entry["b_key"])), entry["b_seq"])
        assert a.worse_than(b) is entry["a_worse_than_b"], entry
