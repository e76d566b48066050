"""The redial schedule on a fake clock: prompt after a peering is lost, the
reference's 5 s doubling otherwise."""

from __future__ import annotations

import random

import pytest

from router.daemon.redial import (
    FIRST_REDIAL_MAX_S,
    FIRST_REDIAL_MIN_S,
    PROMPT_WINDOW_S,
    RECONNECT_MAX_S,
    RECONNECT_MIN_S,
    RETRY_MAX_S,
    RETRY_MIN_S,
    START_WINDOW_S,
    STEADY_PEERING_S,
    RedialSchedule,
    Uniform,
)

REFERENCE = [5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0, 1280.0, 2560.0, 3600.0, 3600.0]


def lowest(low: float, high: float) -> float:
    return low


def highest(low: float, high: float) -> float:
    return high


def waits(schedule: RedialSchedule, now: float, count: int) -> tuple[list[float], float]:
    """The next ``count`` delays, each dial failing at once; and the time after them."""
    out = []
    for _ in range(count):
        delay = schedule.next_delay(now)
        out.append(delay)
        now += delay
    return out, now


def test_the_constants_are_the_documented_ones() -> None:
    assert (RECONNECT_MIN_S, RECONNECT_MAX_S) == (5.0, 3600.0)  # the reference's
    assert (FIRST_REDIAL_MIN_S, FIRST_REDIAL_MAX_S) == (0.05, 0.3)
    assert (RETRY_MIN_S, RETRY_MAX_S) == (0.35, 0.65)
    assert PROMPT_WINDOW_S == 30.0
    assert START_WINDOW_S == 15.0


def test_a_peer_never_reached_gets_the_references_doubling_to_an_hour() -> None:
    delays, _ = waits(RedialSchedule(highest), 0.0, len(REFERENCE))
    assert delays == REFERENCE


@pytest.mark.parametrize("uniform", [lowest, highest], ids=["lowest", "highest"])
def test_a_lost_peering_is_redialled_promptly_then_on_the_reference_schedule(uniform: Uniform) -> None:
    schedule = RedialSchedule(uniform)
    schedule.up(100.0)
    schedule.down(200.0)
    first = schedule.next_delay(200.0)
    assert first == (FIRST_REDIAL_MIN_S if uniform is lowest else FIRST_REDIAL_MAX_S)
    now = 200.0 + first
    retries = []
    while now < 200.0 + PROMPT_WINDOW_S:
        delay = schedule.next_delay(now)
        retries.append(delay)
        now += delay
    assert set(retries) == {RETRY_MIN_S if uniform is lowest else RETRY_MAX_S}
    # The last retry may end just past the window; from then on, the reference's.
    assert now - (200.0 + PROMPT_WINDOW_S) < RETRY_MAX_S
    delays, _ = waits(schedule, now, len(REFERENCE))
    assert delays == REFERENCE


def test_the_window_boundary_exactly() -> None:
    schedule = RedialSchedule(lowest)
    schedule.up(0.0)
    schedule.down(10.0)
    assert schedule.prompt_until == 10.0 + PROMPT_WINDOW_S
    assert schedule.next_delay(10.0) == FIRST_REDIAL_MIN_S
    assert schedule.next_delay(10.0 + PROMPT_WINDOW_S - 1e-6) == RETRY_MIN_S
    assert schedule.next_delay(10.0 + PROMPT_WINDOW_S) == RECONNECT_MIN_S
    assert schedule.next_delay(10.0 + PROMPT_WINDOW_S + 5.0) == 2 * RECONNECT_MIN_S


def test_jitter_stays_in_its_bounds_and_spreads() -> None:
    rng = random.Random(7)
    firsts, retries = [], []
    for _ in range(1000):
        schedule = RedialSchedule(rng.uniform)
        schedule.up(0.0)
        schedule.down(3.0)
        firsts.append(schedule.next_delay(3.0))
        retries.append(schedule.next_delay(3.5))
    assert all(FIRST_REDIAL_MIN_S <= d <= FIRST_REDIAL_MAX_S for d in firsts)
    assert all(RETRY_MIN_S <= d <= RETRY_MAX_S for d in retries)
    assert max(retries) < 1.0
    # A thousand peers of a restarted node do not all dial it in the same instant.
    assert len({round(d, 3) for d in firsts}) > 200


def test_a_peer_back_within_the_window_is_redialled_within_a_second() -> None:
    """Whenever in the window the peer becomes reachable, the next dial is less
    than a second away."""
    rng = random.Random(11)
    schedule = RedialSchedule(rng.uniform)
    schedule.up(0.0)
    schedule.down(60.0)
    now = 60.0 + schedule.next_delay(60.0)
    while now < 60.0 + PROMPT_WINDOW_S:
        delay = schedule.next_delay(now)
        assert delay < 1.0
        now += delay


def test_a_peering_closed_for_a_fault_keeps_the_reference_schedule() -> None:
    schedule = RedialSchedule(lowest)
    schedule.up(0.0)
    schedule.down(100.0, fault=True)
    delays, _ = waits(schedule, 100.0, 3)
    assert delays == [5.0, 10.0, 20.0]


def test_a_peer_that_drops_us_at_once_gets_one_window_then_the_references_pace() -> None:
    schedule = RedialSchedule(lowest)
    now = 0.0
    # Every dial succeeds and the peering ends a moment later.
    delays = []
    while now < 200.0:
        schedule.up(now)
        now += 0.01
        schedule.down(now)
        delay = schedule.next_delay(now)
        delays.append(delay)
        now += delay
    prompt = [d for d in delays if d < 1.0]
    assert delays[0] == FIRST_REDIAL_MIN_S
    assert len(prompt) <= PROMPT_WINDOW_S / RETRY_MIN_S + 1
    # After the window, every success starts the reference's schedule over: 5 s.
    assert set(delays[len(prompt) :]) == {RECONNECT_MIN_S}
    # A peering that holds for a while opens a new window when it ends.
    schedule.up(now)
    schedule.down(now + STEADY_PEERING_S)
    assert schedule.next_delay(now + STEADY_PEERING_S) == FIRST_REDIAL_MIN_S


def test_a_second_loss_inside_the_window_after_a_steady_peering_starts_it_over() -> None:
    schedule = RedialSchedule(lowest)
    schedule.up(0.0)
    schedule.down(10.0)
    assert schedule.next_delay(10.0) == FIRST_REDIAL_MIN_S
    schedule.up(11.0)
    schedule.down(11.0 + STEADY_PEERING_S)
    assert schedule.prompt_until == 11.0 + STEADY_PEERING_S + PROMPT_WINDOW_S
    assert schedule.next_delay(11.0 + STEADY_PEERING_S) == FIRST_REDIAL_MIN_S


@pytest.mark.parametrize("uniform", [lowest, highest], ids=["lowest", "highest"])
def test_a_peer_just_configured_is_retried_promptly_then_on_the_reference_schedule(uniform: Uniform) -> None:
    schedule = RedialSchedule(uniform, configured_at=50.0)
    now = 50.0
    prompt = []
    while now < 50.0 + START_WINDOW_S:
        delay = schedule.next_delay(now)
        prompt.append(delay)
        now += delay
    assert prompt and all(RETRY_MIN_S <= d <= RETRY_MAX_S for d in prompt)
    assert prompt[0] == uniform(RETRY_MIN_S, RETRY_MAX_S)
    delays, _ = waits(schedule, now, 3)
    assert delays == REFERENCE[:3]


def test_a_peer_reached_in_its_start_window_and_lost_gets_a_loss_window() -> None:
    schedule = RedialSchedule(lowest, configured_at=0.0)
    assert schedule.next_delay(0.0) == RETRY_MIN_S
    schedule.up(1.0)
    schedule.down(100.0)
    assert schedule.next_delay(100.0) == FIRST_REDIAL_MIN_S
    assert schedule.prompt_until == 100.0 + PROMPT_WINDOW_S
