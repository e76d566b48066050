"""Nodes started together on one LAN end with one peering per neighbour.

Real nodes in network namespaces, peers found by their LAN beacons only, on
links of 100 ms each way: long enough that both ends of a pair hear each
other's beacon before either's dial arrives, so they race, every time here.
``python -m bench.testbed.lan_starts`` runs the same rounds twenty times
over, and at LAN delays, for docs/performance.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.testbed.lan_starts import HOLD_S, one_round

DELAY_S = 0.1


@pytest.mark.usefixtures("namespaces_or_skip")
@pytest.mark.parametrize("size", [2, 3])
def test_nodes_that_dial_each_other_at_once_keep_one_peering_each(tmp_path: Path, size: int) -> None:
    for seed in (1, 2):
        outcome = one_round(tmp_path, size, seed, DELAY_S)
        assert outcome.covered_s is not None, outcome
        # Both ends dialled (the nodes closed duplicates), and from a second
        # after every node peered with every other to the end of the round,
        # each held exactly one peering per neighbour.
        assert outcome.raced > 0, outcome
        assert outcome.exact_s is not None and outcome.exact_s - outcome.covered_s <= HOLD_S, outcome
        assert outcome.ok
