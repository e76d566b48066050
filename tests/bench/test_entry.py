"""``python -m bench`` and ``pinewood bench`` reach the simulator and the report."""

from __future__ import annotations

import re

import pytest

from bench.entry import main as bench_main
from router.daemon.cli import main as pinewood


def test_usage_without_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_main([]) == 2
    assert "report" in capsys.readouterr().out


def test_pinewood_bench_sim(capsys: pytest.CaptureFixture[str]) -> None:
    assert pinewood(["bench", "sim", "--graph", "line:4", "--duration", "12", "--pairs", "3"]) == 0
    out = capsys.readouterr().out
    assert "cold on line:4: 4 nodes, 3 edges" in out
    assert "signed and verified" in out


def test_startup_measures_a_real_start(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_main(["startup", "--runs", "1", "--settle", "0.2"]) == 0
    out = capsys.readouterr().out
    match = re.search(r"median of 1: cpu ([0-9.]+) s to the first admin answer, .* rss ([0-9.]+) MiB", out)
    assert match is not None, out
    cpu, rss = float(match[1]), float(match[2])
    assert cpu > 0 and rss > 5  # read from the process, not made up
