"""The testbed end to end: five real Pinewood nodes in network namespaces on
wide-area links (10-150 ms each way, 0.5-2% loss), started cold, through the
command an operator runs; then nothing of the run is left behind."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bench.daemons import wait_until
from bench.report import draw_testbed_plots
from bench.testbed import netns
from bench.testbed.report import render_testbed


@pytest.mark.usefixtures("namespaces_or_skip")
def test_wan_ring_of_five_delivers_and_cleans_up(tmp_path: Path) -> None:
    out = tmp_path / "testbed.json"
    command = [
        sys.executable, "-m", "bench.testbed", "--scenarios=wan", "--variants=pinewood", "--graph=ring:5",
        "--duration=20", "--rest=8", f"--workdir={tmp_path / 'nodes'}", f"--json={out}",
    ]  # fmt: skip
    done = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        printed, _ = done.communicate(timeout=120)
    finally:
        if done.poll() is None:
            done.kill()
            done.wait()
    assert done.returncode == 0, printed[-4000:]
    (run,) = json.loads(out.read_text())["runs"]
    print(printed)

    # Every ordered pair of the five answered, and once answered the network
    # kept delivering (a ping crosses at most four lossy links in all).
    assert run["first_answer_s"]["answered"] == run["first_answer_s"]["count"] == 20
    settled = max(run["first_answer_values"])
    later = [b for b in run["probes"]["series"] if b["t"] >= settled]
    sent = sum(b["pings"] for b in later)
    answered = sum(b["delivery"] * b["pings"] for b in later)
    assert sent >= 30 and answered / sent >= 0.85, later
    # The links' delay is there: no round trip beats two of the shortest one-way delays.
    assert run["probes"]["rtt_ms"]["p50"] >= 20.0
    # Paths were measured and none is shorter than the shortest.
    rows = run["path"]["pairs"]
    assert rows and all(r["hops"] >= r["shortest"] for r in rows)
    # At rest (8 s: a node whose paths are quiet may send only keepalives,
    # one a peering every 3 to 3.5 s, on a grid all nodes share).
    pinewood = run["rest"]["by_kind"]["pinewood"]
    assert pinewood["link_bytes_per_s"]["mean"] > 0 and pinewood["rss_mib"]["mean"] > 10
    assert run["emulator"]["write_errors"] == 0

    # The report's section and plots are made from these results.
    result = json.loads(out.read_text())
    section = {
        "measured": "now",
        "command": " ".join(command[1:]),
        "wall_s": 1.0,
        "machine": {"python": "3", "platform": "x", "cpus": 2, "load_average": [0.0, 0.0, 0.0]},
        "result": result,
        "plots": draw_testbed_plots(result, tmp_path),
    }
    text = "\n".join(render_testbed({"testbed": section}))
    assert "| wan | pinewood | 5 |" in text
    assert all((tmp_path / name).stat().st_size > 1000 for name in section["plots"].values())

    # Nothing is left: no namespace of the run, no process of its nodes.
    assert _namespaces(f"{netns.PREFIX}{done.pid}-") == []
    assert _node_pids(tmp_path / "nodes") == []


@pytest.mark.usefixtures("namespaces_or_skip")
def test_ctrl_c_removes_the_namespaces_and_nodes_of_the_run(tmp_path: Path) -> None:
    nodes = tmp_path / "nodes"
    command = [
        sys.executable, "-m", "bench.testbed", "--scenarios=cold", "--variants=pinewood", "--graph=line:3",
        "--duration=60", f"--workdir={nodes}", f"--json={tmp_path / 'out.json'}",
    ]  # fmt: skip
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        prefix = f"{netns.PREFIX}{run.pid}-"
        wait_until(
            lambda: len([n for n in netns.owned_names() if n.startswith(prefix)]) == 3, 30, "3 namespaces"
        )
        wait_until(lambda: len(_node_pids(nodes)) == 3, 30, "3 nodes running")
        run.send_signal(signal.SIGINT)
        out, _ = run.communicate(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 130, out.decode(errors="replace")[-2000:]
    assert b"interrupted" in out
    assert _namespaces(prefix) == []
    assert _node_pids(nodes) == []
    assert not (tmp_path / "out.json").exists()


def _namespaces(prefix: str) -> list[str]:
    return [n for n in netns.owned_names() if n.startswith(prefix)]


def _node_pids(workdir: Path) -> list[int]:
    """The node processes whose data directories are under ``workdir``."""
    pattern = f"--data-dir={workdir}/"
    found = subprocess.run(["pgrep", "-f", "--", pattern], capture_output=True, text=True, check=False)
    return [int(p) for p in found.stdout.split()]


@pytest.mark.usefixtures("namespaces_or_skip")
def test_leftovers_of_a_killed_run_are_removed() -> None:
    gone_owner = 2**22 + 12345  # above the kernel's default pid_max: no such process
    name = f"{netns.PREFIX}{gone_owner}-0"
    netns.ip("netns", "add", name)
    sleeper = subprocess.Popen(["ip", "netns", "exec", name, "sleep", "300"])
    try:
        assert name in netns.owned_names()
        wait_until(lambda: sleeper.pid in netns.pids_in(name), 10, "the sleeper inside the namespace")
        removed = netns.remove_leftovers()
        assert name in removed
        assert name not in netns.owned_names()
        assert sleeper.wait(timeout=10) != 0  # killed with its namespace
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
        netns.ip("netns", "del", name, check=False)
