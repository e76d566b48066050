"""The busiest-link measure of signed frames that sizes the per-peer budget."""

from __future__ import annotations

import json

import pytest

from bench.sim.peer_rates import LinkRates, main, window_peak
from router.wire import FrameType

BOOTSTRAP = int(FrameType.BOOTSTRAP)
WAKEUP = int(FrameType.WAKEUP_BROADCAST)


def test_window_peak_is_the_largest_sum_of_consecutive_seconds() -> None:
    assert window_peak([1, 5, 0, 2, 4], 1) == 5
    assert window_peak([1, 5, 0, 2, 4], 2) == 6
    assert window_peak([1, 5, 0, 2, 4], 10) == 12


def test_peaks_are_per_link_and_kind_and_ignore_unsigned_frames() -> None:
    rates = LinkRates()
    for second in (0, 0, 1):
        rates.observe("a", "b", second, BOOTSTRAP)
    rates.observe("b", "a", 0, WAKEUP)  # the other direction is another link
    rates.observe("a", "b", 0, int(FrameType.TRAFFIC))
    rates.observe("a", "b", 0, int(FrameType.KEEPALIVE))
    assert rates.peaks(1) == {"bootstrap": 2, "all signed": 2, "wakeup_broadcast": 1}
    assert rates.peaks(10)["bootstrap"] == 3


def test_it_runs_on_a_small_network(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--graph", "line:5", "--duration", "12", "--pairs", "4"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["nodes"] == 5
    assert out["busiest_link_per_10_s"]["bootstrap"] >= out["busiest_link_per_1_s"]["bootstrap"] > 0
