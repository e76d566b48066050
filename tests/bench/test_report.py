"""The benchmark report in quick mode: every section it runs ends up in REPORT.md."""

from __future__ import annotations

import json
from pathlib import Path

from bench.report import main


def test_quick_report_of_the_simulator(tmp_path: Path) -> None:
    """The simulator section for real (small graphs); the relay section is
    pluggable and absent here.  The process benchmarks (throughput, sessions)
    start real daemons and are left to ``make bench``."""
    assert main(["--quick", "--only", "sim,relay", "--out", str(tmp_path)]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    sim = json.loads((tmp_path / "sim.json").read_text())
    assert sim["quick"] is True
    assert "python -m bench report --quick --only sim,relay" in report
    assert "## Simulator" in report and "## Targets" in report
    for run in sim["runs"]:
        assert f"| {run['config']['scenario']} | {run['graph']['name']} |" in report
    for name in sim["plots"].values():
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({name})" in report
    relay = json.loads((tmp_path / "relay.json").read_text())
    assert "skipped" in relay and "Skipped: no bench.relay module" in report
    assert "## Throughput" not in report


def test_sections_are_rewritten_alone(tmp_path: Path) -> None:
    """Running one section keeps the others' stored figures in the report."""
    assert main(["--quick", "--only", "relay", "--out", str(tmp_path)]) == 0
    (tmp_path / "marker").write_text("")
    first = json.loads((tmp_path / "relay.json").read_text())
    assert main(["--quick", "--only", "relay", "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "relay.json").read_text())["skipped"] == first["skipped"]
    assert "## Relay" in (tmp_path / "REPORT.md").read_text()
