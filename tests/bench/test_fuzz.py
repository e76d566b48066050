"""``python -m bench.fuzz``: a short coverage-guided run finds nothing, and a planted
bug is found and reported with its input."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from bench.fuzz import ROOT

pytest.importorskip("atheris")


def fuzz(*args: str) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.fuzz", "--json", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return done.returncode, result


def test_a_short_run_of_the_wire_decoders_finds_nothing() -> None:
    status, result = fuzz("--runs", "20000")
    assert result["failed"] == []
    assert (status, result["failures"], result["runs"]) == (0, 0, 20000)
    assert result["coverage"] > 0 and result["corpus_size"] > 0


def test_a_planted_decoder_bug_is_reported_with_its_input() -> None:
    status, result = fuzz("--target", "broken", "--runs", "1000000")
    assert status == 1 and result["failures"] == 1
    failure = result["failed"][0]
    data = bytes.fromhex(failure["input_hex"])
    assert data and all(b & 0x80 for b in data)  # ends inside a varu64: what the reader trips on
    assert "IndexError" in failure["traceback"] and "_unchecked_varu64" in failure["traceback"]
    assert result["runs"] < 1_000_000
