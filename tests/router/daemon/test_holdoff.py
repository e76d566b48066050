"""The hold-off table: growing waits, forgetting, a bounded size."""

from __future__ import annotations

from router.daemon.holdoff import FORGET_AFTER_S, HOLD_OFF_FIRST_S, HOLD_OFF_MAX_S, HoldOffs


def test_each_strike_doubles_the_wait_up_to_the_cap() -> None:
    held = HoldOffs()
    now = 100.0
    waits = []
    for _ in range(10):
        waits.append(held.strike("key", now))
        now += 1.0
    assert waits[:4] == [HOLD_OFF_FIRST_S, 2 * HOLD_OFF_FIRST_S, 4 * HOLD_OFF_FIRST_S, 8 * HOLD_OFF_FIRST_S]
    assert waits[-1] == HOLD_OFF_MAX_S
    assert held.remaining("key", now) == HOLD_OFF_MAX_S - 1.0
    assert held.remaining("other", now) == 0.0


def test_a_hold_ends_and_an_old_record_is_forgotten() -> None:
    held = HoldOffs()
    held.strike("addr", 0.0)
    assert held.remaining("addr", HOLD_OFF_FIRST_S - 1) == 1.0
    assert held.remaining("addr", HOLD_OFF_FIRST_S + 1) == 0.0
    # Within the memory window a new strike waits longer; after it, the count starts over.
    assert held.strike("addr", 100.0) == 2 * HOLD_OFF_FIRST_S
    assert held.strike("addr", 100.0 + FORGET_AFTER_S + 1) == HOLD_OFF_FIRST_S
    held.sweep(100.0 + 3 * FORGET_AFTER_S)
    assert len(held) == 0


def test_a_full_table_gives_up_the_hold_that_ends_first() -> None:
    held = HoldOffs(capacity=3)
    for name in ("a", "b", "c"):
        held.strike(name, 0.0)
    held.strike("c", 1.0)  # c now waits longest, a ends first
    held.strike("d", 2.0)
    assert len(held) == 3
    assert held.remaining("a", 2.0) == 0.0
    assert all(held.remaining(name, 2.0) > 0 for name in ("b", "c", "d"))
