"""Smoke test of ``python -m bench.throughput``: one short run of both chains.

It asserts only that the benchmark works and measures something; the figures
themselves come from the full run (``python -m bench.throughput``).
"""

from __future__ import annotations

import json

import pytest

from bench.throughput import main


def test_throughput_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--runs", "1", "--seconds", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["baseline_frames_s"] > 0
    assert result["router_frames_s"] > 0
    assert result["per_run"]["router"][0]["pings"] > 0
