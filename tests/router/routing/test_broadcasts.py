"""The wakeup-broadcast filter: the reference's rules, in 16 bytes an entry."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.routing.broadcasts import SEQUENCE_MAX, TICKS_PER_S, SeenBroadcasts
from router.routing.constants import BROADCAST_EXPIRY_S, BROADCAST_FILTER_S


def table(now: float = 1000.0, capacity: int = 1000) -> SeenBroadcasts:
    return SeenBroadcasts(now, filter_s=BROADCAST_FILTER_S, expiry_s=BROADCAST_EXPIRY_S, capacity=capacity)


KEY, OTHER = os.urandom(32), os.urandom(32)


def test_unknown_sources_pass_and_accepted_ones_are_filtered_for_the_filter_time() -> None:
    seen = table()
    assert not seen.is_duplicate(KEY, 5, 1000.0)
    seen.accept(KEY, 5, 1000.0)
    assert seen.is_duplicate(KEY, 6, 1000.0 + BROADCAST_FILTER_S - 0.5)  # too soon
    assert not seen.is_duplicate(OTHER, 1, 1001.0)
    assert not seen.is_duplicate(KEY, 6, 1000.0 + BROADCAST_FILTER_S + 0.5)


def test_a_sequence_not_above_the_last_is_dropped_however_late() -> None:
    seen = table()
    seen.accept(KEY, 500, 1000.0)
    later = 1000.0 + BROADCAST_FILTER_S + 10
    assert seen.is_duplicate(KEY, 500, later)
    assert seen.is_duplicate(KEY, 499, later)
    assert not seen.is_duplicate(KEY, 501, later)


def test_sources_are_forgotten_after_the_expiry_period() -> None:
    seen = table()
    seen.accept(KEY, 500, 1000.0)
    seen.accept(OTHER, 7, 1000.0 + 100)
    seen.sweep(1000.0 + BROADCAST_EXPIRY_S - 1)
    assert len(seen) == 2
    seen.sweep(1000.0 + BROADCAST_EXPIRY_S + 1)
    assert len(seen) == 1
    assert not seen.is_duplicate(KEY, 500, 1000.0 + BROADCAST_EXPIRY_S + 1)  # a replay, once forgotten
    assert seen.is_duplicate(OTHER, 7, 1000.0 + BROADCAST_EXPIRY_S + 1)


def test_ages_stay_right_across_the_tick_counter_wrapping_when_swept() -> None:
    seen = table()
    now = 1000.0
    sequence = 1
    for _ in range(400):  # 400 minutes: the 16-bit quarter-second counter wraps
        now += 60.0
        sequence += 60_000
        assert not seen.is_duplicate(KEY, sequence, now)
        seen.accept(KEY, sequence, now)
        assert seen.is_duplicate(KEY, sequence + 1, now + 1.0)
        seen.sweep(now)
    assert len(seen) == 1


def test_sequences_past_48_bits_saturate() -> None:
    seen = table()
    seen.accept(KEY, 2**63, 1000.0)
    assert seen.is_duplicate(KEY, SEQUENCE_MAX, 1100.0)
    assert seen.is_duplicate(KEY, 2**64 - 1, 1100.0)  # saturated: never above the last
    seen.sweep(1000.0 + BROADCAST_EXPIRY_S)
    assert len(seen) == 0


def test_at_capacity_the_oldest_are_forgotten_first() -> None:
    seen = table(capacity=64)
    keys = [os.urandom(32) for _ in range(100)]
    for i, key in enumerate(keys):
        seen.accept(key, 1, 1000.0 + i)
        assert len(seen) <= 64
    # The newest are remembered; the oldest were evicted.
    assert all(seen.is_duplicate(k, 1, 1000.0 + 100) for k in keys[-40:])
    assert not any(seen.is_duplicate(k, 1, 1000.0 + 100) for k in keys[:30])


def test_times_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError):
        SeenBroadcasts(0.0, filter_s=200.0, expiry_s=100.0, capacity=10)


def test_an_entry_costs_16_bytes() -> None:
    seen = table(capacity=100_000)
    for i in range(10_000):
        seen.accept(os.urandom(32), i, 1000.0)
    assert seen._sources.itemsize + seen._entries.itemsize == 16
    assert len(seen._sources) == len(seen._entries) == 10_000


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["check", "accept", "sweep"]),
            st.integers(0, 7),  # which of 8 keys
            st.integers(0, 2**50),  # sequence
            st.floats(0.0, 90.0),  # time step
        ),
        max_size=60,
    )
)
def test_matches_a_plain_model_of_the_rules(ops: list[tuple[str, int, int, float]]) -> None:
    keys = [bytes([i]) * 32 for i in range(8)]
    origin = 1000.0
    seen = table(origin)
    model: dict[int, tuple[int, int]] = {}  # key index -> (sequence, ticks)
    now = origin
    for op, k, sequence, step in ops:
        now += step
        ticks = int((now - origin) * TICKS_PER_S)
        if op == "check":
            last = model.get(k)
            expected = last is not None and (
                ticks - last[1] < BROADCAST_FILTER_S * TICKS_PER_S or min(sequence, SEQUENCE_MAX) <= last[0]
            )
            assert seen.is_duplicate(keys[k], sequence, now) == expected
        elif op == "accept":
            seen.accept(keys[k], sequence, now)
            model[k] = (min(sequence, SEQUENCE_MAX), ticks)
        else:
            seen.sweep(now)
            model = {i: v for i, v in model.items() if ticks - v[1] < BROADCAST_EXPIRY_S * TICKS_PER_S}
        assert len(seen) == len(model)


def test_at_capacity_with_every_entry_the_same_age_only_an_eighth_goes() -> None:
    seen = table(capacity=64)
    keys = [os.urandom(32) for _ in range(65)]
    for key in keys:
        seen.accept(key, 1, 1000.0)  # all in the same instant
    assert len(seen) == 64 - 8 + 1
    assert seen.is_duplicate(keys[-1], 1, 1000.0)
