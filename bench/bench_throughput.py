"""Smoke test of ``python -m bench.throughput``: one short run of both chains,
with two floods into the router chain.

It asserts only that the benchmark works and measures something; the figures
themselves come from the full run (``python -m bench.throughput``).
"""

from __future__ import annotations

import json

import pytest

from bench.throughput import main


def test_throughput_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--runs", "1", "--seconds", "1", "--floods", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["baseline_frames_s"] > 0
    assert result["router_frames_s"] > 0
    assert result["per_run"]["router"][0]["pings"] > 0
    # Both floods got through the first router (how evenly is the full run's figure).
    assert len(result["per_run"]["router"][0]["flood_shares"]) == 2
    assert result["smaller_flood_share"] > 0
