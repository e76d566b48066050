"""Nodes started together on one LAN end with one peering per neighbour,
every time of twenty.

Real nodes in network namespaces, peers found by their LAN beacons only, on
links of 100 ms each way: long enough that both ends of a pair hear each
other's beacon before either's dial arrives, so they race.  All are killed
and launched together again twenty times.  ``python -m bench.testbed.lan_starts``
runs a fresh testbed a round, with longer rounds and at LAN delays, for
docs/performance.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.testbed.lan_starts import HOLD_S, restarted_rounds

DELAY_S = 0.1
ROUNDS = 20


@pytest.mark.usefixtures("namespaces_or_skip")
@pytest.mark.parametrize("size", [2, 3])
def test_nodes_that_dial_each_other_at_once_keep_one_peering_each(tmp_path: Path, size: int) -> None:
    rounds = restarted_rounds(tmp_path, size, ROUNDS, DELAY_S, end_s=2.5)
    assert len(rounds) == ROUNDS
    for outcome in rounds:
        # From a second after every node peered with every other to the end of
        # the round, each held exactly one peering per neighbour.
        assert outcome.covered_s is not None, outcome
        assert outcome.exact_s is not None and outcome.exact_s - outcome.covered_s <= HOLD_S, outcome
        assert outcome.ok
    # Both ends dialled (the nodes closed duplicates) in most rounds: the
    # tie-break, not luck, is what left one peering.
    assert sum(r.raced > 0 for r in rounds) >= ROUNDS // 2, rounds
