"""What a node costs to start and to keep: processor time until its admin API
answers, and resident memory then and once it has settled.

``python -m bench startup [--runs 5] [--settle 3]`` starts one ``pinewood run``
at a time (a fresh data directory each, TCP listener on loopback, nothing else
configured), polls ``GET /status`` until it answers, and reads the process's
user and system time and its resident set from ``/proc`` at that moment.  The
kernel counts processor time in ticks (10 ms here), so the figure is the median
of several starts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.daemons import free_port

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
POLL_INTERVAL_S = 0.002
START_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Start:
    cpu_s: float
    """User and system time of the process when its admin API first answered."""
    wall_s: float
    rss_mib: float
    """Resident set when it first answered."""
    settled_rss_mib: float
    """Resident set after the settling time, at rest."""


def process_cpu_s(pid: int) -> float:
    # Fields after the command name (which may hold spaces) start at the state, field 3.
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND


def process_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"process {pid} has no VmRSS")


def process_pss_mib(pid: int) -> float:
    """The proportional set: resident memory with each shared page divided among
    the processes that map it (the interpreter's and libraries' pages, when
    several nodes run on one machine)."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"process {pid} has no Pss")


def answers(admin_port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/status", timeout=1.0) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def start_once(root: Path, settle_s: float, extra: Sequence[str] = ()) -> Start:
    admin_port = free_port()
    data_dir = Path(tempfile.mkdtemp(dir=root))
    began = time.monotonic()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "router",
            "run",
            "--listen=tcp://127.0.0.1:0",
            f"--admin=127.0.0.1:{admin_port}",
            f"--data-dir={data_dir}",
            "--log-format=json",
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while not answers(admin_port):
            if process.poll() is not None:
                raise RuntimeError(f"pinewood run exited with {process.returncode} before answering")
            if time.monotonic() - began > START_TIMEOUT_S:
                raise RuntimeError(f"pinewood run did not answer within {START_TIMEOUT_S} s")
            time.sleep(POLL_INTERVAL_S)
        cpu = process_cpu_s(process.pid)
        wall = time.monotonic() - began
        rss = process_rss_mib(process.pid)
        time.sleep(settle_s)
        return Start(cpu, wall, rss, process_rss_mib(process.pid))
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def measure(runs: int, settle_s: float, extra: Sequence[str] = ()) -> list[Start]:
    with tempfile.TemporaryDirectory(prefix="pinewood-startup-") as root:
        return [start_once(Path(root), settle_s, extra) for _ in range(runs)]


def summary(starts: Sequence[Start]) -> dict[str, float]:
    return {
        "cpu_s": statistics.median(s.cpu_s for s in starts),
        "wall_s": statistics.median(s.wall_s for s in starts),
        "rss_mib": statistics.median(s.rss_mib for s in starts),
        "settled_rss_mib": statistics.median(s.settled_rss_mib for s in starts),
    }


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench startup", description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="starts to take the median of")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds at rest, then memory again")
    parser.add_argument("--node-arg", action="append", default=[], help="an extra argument for pinewood run")
    args = parser.parse_args(argv)
    starts = measure(args.runs, args.settle, args.node_arg)
    for start in starts:
        print(
            f"cpu {start.cpu_s:.2f} s  wall {start.wall_s:.2f} s  "
            f"rss {start.rss_mib:.1f} MiB  settled {start.settled_rss_mib:.1f} MiB"
        )
    median = summary(starts)
    print(
        f"median of {len(starts)}: cpu {median['cpu_s']:.2f} s to the first admin answer, "
        f"wall {median['wall_s']:.2f} s, rss {median['rss_mib']:.1f} MiB, "
        f"settled {median['settled_rss_mib']:.1f} MiB"
    )
    return 0
