"""``python -m bench.hostile``: its JSON rows, and the report sections made of them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.report import main as report_main

KEYS = {"attack", "ping_loss", "p99_rtt_ms", "good_peerings_dropped", "rss_growth_mb", "target_cpu", "rate"}


def test_quick_rows_as_json() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.hostile", "--quick", "--only", "none,forged-wakeup", "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    rows = json.loads(out)
    assert [r["attack"] for r in rows] == ["none", "forged-wakeup"]
    for row in rows:
        assert row.keys() >= KEYS
        assert 0.0 <= row["ping_loss"] <= 1.0 and row["pings"] > 0
    none, forged = rows
    assert none["closed_after_s"] is None and none["unit"] == ""
    assert forged["closed_after_s"] is not None and forged["rate"] > 0 and forged["refused"] > 0


def test_the_report_shows_the_attacks_and_the_fuzzing(tmp_path: Path) -> None:
    assert report_main(["--quick", "--only", "fuzz", "--out", str(tmp_path)]) == 0
    fuzz = json.loads((tmp_path / "fuzz.json").read_text())
    assert fuzz["result"]["runs"] == 20000 and fuzz["result"]["failures"] == 0
    stamp = {k: fuzz[k] for k in ("measured", "command", "quick", "wall_s", "machine")}
    rows = [
        {
            "attack": "forged-bootstrap", "seconds": 6.0, "rate": 90.0, "unit": "frames", "target_cpu": 0.1,
            "pings": 54, "ping_loss": 0.0, "p99_rtt_ms": 3.5, "good_peerings_dropped": 0,
            "closed_after_s": 0.01, "rss_growth_mb": 0.2, "max_silence_s": 3.3, "refused": 250,
            "probes": 0, "probes_served": 0, "probe_max_s": 0.0, "parts": [],
        },
        {
            "attack": "gateway-idle", "seconds": 6.0, "rate": 100.0, "unit": "connections",
            "target_cpu": 0.01, "pings": 54, "ping_loss": 0.0, "p99_rtt_ms": 1.5,
            "good_peerings_dropped": 0, "closed_after_s": None, "rss_growth_mb": 0.1,
            "max_silence_s": 3.1, "refused": 0, "probes": 30, "probes_served": 30, "probe_max_s": 0.02,
            "parts": [],
        },
    ]  # fmt: skip
    (tmp_path / "hostile.json").write_text(json.dumps({**stamp, "result": rows}))
    assert report_main(["--render", "--out", str(tmp_path)]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    assert "## Hostile peers" in report and "## Fuzzing the wire decoders" in report
    assert "| forged-bootstrap | 6 | 90 frames/s | 0.10 | 0.0 % (54 pings) | 3.5 | 0 | 0.01 s |" in report
    assert "- gateway-idle: 600 idle connections opened and held; 30 of 30 requests" in report
    assert "- inputs: 20,000 in" in report and "- failures: 0" in report
