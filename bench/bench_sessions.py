"""Smoke test of ``python -m bench.sessions``: one short run.

It asserts only that the benchmark works and measures something (a tunnel
through the gateway carries bytes, requests get answers); the figures come
from the full run.
"""

from __future__ import annotations

import json

import pytest

from bench.sessions import main


def test_sessions_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--runs", "1", "--seconds", "1", "--clients", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["session_stream_mb_s"] > 0
    assert result["bare_aioquic_stream_mb_s"] > 0
    assert result["bare_qh3_stream_mb_s"] > 0
    assert result["gateway_requests_s"] > 0
