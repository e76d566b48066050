"""The benchmark report in quick mode: every section it runs ends up in REPORT.md."""

from __future__ import annotations

import json
import re
from pathlib import Path

from bench.report import main
from bench.report_node import previous_node, render_node


def test_quick_report_of_the_simulator(tmp_path: Path) -> None:
    """The simulator and relay sections for real (small graphs; a short SQLite
    relay run with one relay process).  The throughput and sessions benchmarks
    start whole chains of daemons and are left to ``make bench``."""
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
    sqlite = relay["result"]["backends"]["sqlite"]
    assert sqlite["store_deposits_s"] > 0 and sqlite["service_deposits_s"] > 0
    assert "## Relay" in report
    assert "## Throughput" not in report


def test_sections_are_rewritten_alone(tmp_path: Path) -> None:
    """Running one section keeps the others' stored figures in the report."""
    assert main(["--quick", "--only", "relay", "--out", str(tmp_path)]) == 0
    first = json.loads((tmp_path / "relay.json").read_text())
    assert main(["--quick", "--only", "sim", "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "relay.json").read_text()) == first
    report = (tmp_path / "REPORT.md").read_text()
    assert "## Relay" in report and "## Simulator" in report


def test_quick_report_of_one_node_and_a_network_at_rest(tmp_path: Path) -> None:
    assert main(["--quick", "--only", "node", "--out", str(tmp_path)]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    assert "## One node: start-up, memory, and a network at rest" in report
    startup_row = re.search(r"\| this one \| ([0-9.]+) s \| [0-9.]+ s \| ([0-9.]+) MiB \|", report)
    assert startup_row is not None, report
    assert float(startup_row[1]) > 0 and float(startup_row[2]) > 5  # read from /proc
    for schedule in ("Pinewood", "reference schedule"):
        row = re.search(rf"\| this one \| {schedule} \| 3 / 3 \| (\d+) \| ([^|]*) \|", report)
        assert row is not None, report
        assert int(row[1]) > 0 and "bootstrap" in row[2]  # every node bootstraps every 5 s
    # The next run keeps these figures as "the run before".
    stored = json.loads((tmp_path / "node.json").read_text())
    previous = previous_node(stored)
    assert previous is not None and previous["startup"] == stored["startup"]
    again = render_node({"node": {**stored, "previous": previous}})
    assert sum(f"| the run before ({stored['measured']})" in line for line in again) == 3
