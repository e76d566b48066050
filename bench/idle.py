"""What a settled network of real nodes costs when it carries nothing: bytes
each node sends a second, by frame type, its wake-ups and processor time.

``python -m bench idle [--nodes 10] [--settle 30] [--window 60]`` starts
``--nodes`` ``pinewood run`` processes on loopback, peered in a ring with a
chord every third node, waits ``--settle`` seconds after the last peering, then
measures for ``--window`` seconds.  Bytes are what the nodes' links wrote
(``pinewood_control_bytes_out_total`` by frame type, and every byte of every
peering); wake-ups are the voluntary context switches of the process's
threads, each one a return from waiting on the event loop; processor time and
memory come from ``/proc`` (the resident set, and the proportional set, which
divides the pages the nodes share among them).  ``--reference`` runs the nodes with no
routing extensions, on the reference's schedule alone; ``--seed`` picks the
nodes' keys, so that both are measured on the same tree and snake.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bench.daemons import Daemon, DaemonNet, wait_until
from bench.startup import process_cpu_s, process_pss_mib, process_rss_mib


@dataclass(frozen=True, slots=True)
class Reading:
    """One node's counters at one moment."""

    at: float
    control: dict[str, float]
    bytes_out: float
    wakeups: int
    cpu_s: float


def wakeups(pid: int) -> int:
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text()
        except OSError:
            continue  # a thread that ended meanwhile
        for line in status.splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                total += int(line.split()[1])
    return total


def read(daemon: Daemon) -> Reading:
    assert daemon.process is not None
    control: dict[str, float] = {}
    bytes_out = 0.0
    for family in text_string_to_metric_families(daemon.api("GET", "/metrics")):
        if family.name == "pinewood_control_bytes_out":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    control[sample.labels["type"]] = sample.value
        elif family.name == "pinewood_peer_bytes_out":
            bytes_out += sum(s.value for s in family.samples if s.name.endswith("_total"))
    pid = daemon.process.pid
    return Reading(time.monotonic(), control, bytes_out, wakeups(pid), process_cpu_s(pid))


def edges(count: int) -> list[tuple[str, str]]:
    """A ring, and a chord from every third node across it (each pair once)."""
    names = [f"n{i}" for i in range(count)]
    pairs: list[tuple[str, str]] = []
    seen: set[frozenset[str]] = set()
    ring = [(i, (i + 1) % count) for i in range(count)]
    chords = [(i, (i + count // 2) % count) for i in range(0, count, 3)] if count > 5 else []
    for a, b in ring + chords:
        pair = frozenset((names[a], names[b]))
        if a != b and pair not in seen:
            seen.add(pair)
            pairs.append((names[a], names[b]))
    return pairs


def seeds(count: int, seed: int) -> dict[str, str]:
    """Each node's key seed, the same for the same ``seed``: the two schedules
    are measured on the same keys, so the same tree and snake."""
    return {f"n{i}": hashlib.sha256(f"pinewood idle {seed} n{i}".encode()).hexdigest() for i in range(count)}


def measure(nodes: int, settle_s: float, window_s: float, reference: bool, seed: int = 1) -> dict[str, Any]:
    extra = ["--routing-extensions="] if reference else []
    with tempfile.TemporaryDirectory(prefix="pinewood-idle-") as root:
        net = DaemonNet(Path(root))
        try:
            links = edges(nodes)
            net.start([f"n{i}" for i in range(nodes)], links, extra=extra, seeds=seeds(nodes, seed))
            degree = Counter(name for edge in links for name in edge)
            daemons = list(net.daemons.values())
            wait_until(
                lambda: all(d.api("GET", "/status")["peers"] == degree[d.name] for d in daemons),
                60,
                "every node peered",
            )
            time.sleep(settle_s)  # the measurement is of a network left alone
            before = {d.name: read(d) for d in daemons}
            time.sleep(window_s)
            after = {d.name: read(d) for d in daemons}
            rss = [process_rss_mib(d.process.pid) for d in daemons if d.process is not None]
            pss = [process_pss_mib(d.process.pid) for d in daemons if d.process is not None]
        finally:
            net.stop_all()
    per_node: list[dict[str, Any]] = []
    for name, end in after.items():
        start = before[name]
        span = end.at - start.at
        kinds = set(start.control) | set(end.control)
        per_node.append(
            {
                "control_bytes_s": {
                    t: (end.control.get(t, 0.0) - start.control.get(t, 0.0)) / span for t in sorted(kinds)
                },
                "bytes_s": (end.bytes_out - start.bytes_out) / span,
                "wakeups_s": (end.wakeups - start.wakeups) / span,
                "cpu_ms_s": 1000 * (end.cpu_s - start.cpu_s) / span,
            }
        )
    types = sorted({t for node in per_node for t in node["control_bytes_s"]})
    return {
        "nodes": nodes,
        "edges": len(links),
        "settle_s": settle_s,
        "window_s": window_s,
        "reference": reference,
        "seed": seed,
        "bytes_per_node_s": statistics.mean(n["bytes_s"] for n in per_node),
        "control_bytes_per_node_s": {
            t: statistics.mean(n["control_bytes_s"].get(t, 0.0) for n in per_node) for t in types
        },
        "wakeups_per_node_s": statistics.mean(n["wakeups_s"] for n in per_node),
        "cpu_ms_per_node_s": statistics.mean(n["cpu_ms_s"] for n in per_node),
        "rss_mib_median": statistics.median(rss),
        "pss_mib_median": statistics.median(pss),
    }


def describe(result: dict[str, Any]) -> str:
    kind = "reference schedule" if result["reference"] else "Pinewood"
    by_type = ", ".join(f"{t} {v:.0f}" for t, v in result["control_bytes_per_node_s"].items() if v)
    return (
        f"{kind}, {result['nodes']} nodes, {result['edges']} peerings, "
        f"at rest for {result['window_s']:.0f} s: "
        f"{result['bytes_per_node_s']:.0f} B/s per node ({by_type}), "
        f"{result['wakeups_per_node_s']:.1f} wake-ups/s, {result['cpu_ms_per_node_s']:.1f} ms CPU/s, "
        f"RSS {result['rss_mib_median']:.1f} MiB (PSS {result['pss_mib_median']:.1f})"
    )


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench idle", description=__doc__)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--settle", type=float, default=30.0, help="seconds after the last peering")
    parser.add_argument(
        "--window", type=float, default=60.0, help="seconds measured (a broadcast a minute from each node)"
    )
    parser.add_argument("--reference", action="store_true", help="no routing extensions")
    parser.add_argument("--seed", type=int, default=1, help="the nodes' keys (the same seed, the same keys)")
    args = parser.parse_args(argv)
    if args.nodes < 2:
        parser.error("--nodes: at least 2")
    print(describe(measure(args.nodes, args.settle, args.window, args.reference, args.seed)))
    return 0
