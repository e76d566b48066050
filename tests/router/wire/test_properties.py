"""Property tests: round trips for every frame type and body, and agreement
between the full decoder and the forwarding fast path."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from router.wire import (
    Frame,
    RootAnnouncement,
    TrafficFrame,
    decode_announcement,
    decode_bootstrap,
    decode_coordinate_ports,
    decode_coordinates,
    decode_frame,
    decode_wakeup,
    encode_coordinates,
    encode_frame,
    sign_bootstrap,
    sign_wakeup,
    traffic_route,
)
from tests.router.wire.keys import K1, K2, K3, K4
from tests.router.wire.strategies import coordinates, frames, keys, traffic_frames, u64

IDS = (K1, K2, K3, K4)


@given(frames)
def test_frame_round_trip(frame: Frame) -> None:
    raw = encode_frame(frame)
    assert int.from_bytes(raw[8:10], "big") == len(raw)
    assert decode_frame(raw) == frame
    assert encode_frame(decode_frame(raw)) == raw


@given(coordinates)
def test_coordinates_round_trip(ports: tuple[int, ...]) -> None:
    raw = encode_coordinates(ports)
    assert decode_coordinates(raw) == (ports, len(raw))


@given(traffic_frames())
def test_fast_path_agrees_with_full_decode(frame: TrafficFrame) -> None:
    raw = encode_frame(frame)
    route = traffic_route(raw)
    assert route.destination_key == frame.destination_key
    assert decode_coordinate_ports(route.destination) == frame.destination
    assert route.hop_limit == frame.hop_limit
    assert raw[route.source_key_offset : route.source_key_offset + 32] == frame.source_key
    if frame.destination:
        assert route.watermark_offset == -1
    else:
        assert (route.watermark_key, route.watermark_sequence) == (
            frame.watermark.key,
            frame.watermark.sequence,
        )


@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(1, 1 << 40)), min_size=0, max_size=6),
    u64,
)
def test_announcement_round_trip(hops: list[tuple[int, int]], sequence: int) -> None:
    ann = RootAnnouncement.create(K4.public_key, sequence)
    for signer, port in hops:
        ann = ann.with_hop(IDS[signer], port)
    decoded = decode_announcement(ann.raw)
    assert decoded == ann
    assert decoded.coordinates == tuple(p for _, p in hops)


@given(st.integers(0, 3), u64, keys, u64)
def test_bootstrap_and_wakeup_round_trip(signer: int, sequence: int, root: bytes, root_sequence: int) -> None:
    identity = IDS[signer]
    body = sign_bootstrap(identity, sequence, root, root_sequence)
    assert decode_bootstrap(body.encode(), signer=identity.public_key) == body
    wake = sign_wakeup(identity, sequence, root, root_sequence)
    assert decode_wakeup(wake.encode(), signer=identity.public_key) == wake
