"""Hypothesis strategies for wire structures."""

from __future__ import annotations

from hypothesis import strategies as st

from router.wire import (
    FULL_WATERMARK,
    BootstrapFrame,
    Frame,
    Keepalive,
    PublicKey,
    TrafficFrame,
    TreeAnnouncementFrame,
    WakeupBroadcastFrame,
    Watermark,
)

u64 = st.integers(min_value=0, max_value=(1 << 64) - 1)
byte = st.integers(min_value=0, max_value=255)
keys = st.binary(min_size=32, max_size=32).map(PublicKey)
ports = st.integers(min_value=0, max_value=(1 << 64) - 1) | st.integers(min_value=0, max_value=300)
coordinates = st.lists(ports, max_size=12).map(tuple)
payloads = st.binary(max_size=300)
watermarks = st.builds(Watermark, keys, u64) | st.just(FULL_WATERMARK)


@st.composite
def traffic_frames(draw: st.DrawFn) -> TrafficFrame:
    destination = draw(coordinates)
    watermark = draw(watermarks) if not destination else FULL_WATERMARK
    return TrafficFrame(
        destination,
        draw(coordinates),
        draw(keys),
        draw(keys),
        draw(payloads),
        watermark,
        hop_limit=draw(byte),
        extra=draw(byte),
    )


frames: st.SearchStrategy[Frame] = st.one_of(
    st.builds(Keepalive, hop_limit=byte, extra=byte),
    st.builds(TreeAnnouncementFrame, payloads, hop_limit=byte, extra=byte),
    st.builds(BootstrapFrame, keys, watermarks, payloads, hop_limit=byte, extra=byte),
    traffic_frames(),
    st.builds(WakeupBroadcastFrame, keys, payloads, hop_limit=byte, extra=byte),
)
