"""What a settled network of real nodes costs when it carries nothing: bytes
each node sends a second, by frame type, its wake-ups and processor time.

``python -m bench idle [--nodes 10] [--settle 30] [--window 60]`` starts
``--nodes`` ``pinewood run`` processes on loopback, peered in a ring with a
chord every third node, waits ``--settle`` seconds after the last peering, then
measures for ``--window`` seconds.  ``--rss-every S`` also reads each node's
resident memory every ``S`` seconds of the window, for a soak: ``--window 3600
--rss-every 60`` shows whether a node at rest grows over an hour.  Bytes are what the nodes' links wrote
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
import json
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


def measure(
    nodes: int, settle_s: float, window_s: float, reference: bool, seed: int = 1, rss_every_s: float = 0.0
) -> dict[str, Any]:
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
            rss_series = watch_rss(daemons, window_s, rss_every_s)
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
        "rss_series": rss_series,
        "rss_growth_mib": growth(rss_series),
    }


def watch_rss(daemons: Sequence[Daemon], window_s: float, every_s: float) -> list[tuple[float, list[float]]]:
    """Sleep through the window; with ``every_s``, read every node's RSS (MiB)
    at its start and every ``every_s`` seconds: (seconds into it, RSS per node)."""
    start = time.monotonic()
    series: list[tuple[float, list[float]]] = []
    while True:
        at = time.monotonic() - start
        if every_s > 0:
            series.append((at, [process_rss_mib(d.process.pid) for d in daemons if d.process is not None]))
        if at >= window_s:
            return series
        time.sleep(min(every_s if every_s > 0 else window_s, window_s - at))


def growth(series: list[tuple[float, list[float]]]) -> dict[str, float] | None:
    """How much each node grew from the first reading to the last: the median
    and the largest, in MiB; None without two readings."""
    if len(series) < 2:
        return None
    deltas = [last - first for first, last in zip(series[0][1], series[-1][1], strict=True)]
    return {"median": statistics.median(deltas), "max": max(deltas), "hours": series[-1][0] / 3600}


def describe(result: dict[str, Any]) -> str:
    kind = "reference schedule" if result["reference"] else "Pinewood"
    by_type = ", ".join(f"{t} {v:.0f}" for t, v in result["control_bytes_per_node_s"].items() if v)
    return (
        f"{kind}, {result['nodes']} nodes, {result['edges']} peerings, "
        f"at rest for {result['window_s']:.0f} s: "
        f"{result['bytes_per_node_s']:.0f} B/s per node ({by_type}), "
        f"{result['wakeups_per_node_s']:.1f} wake-ups/s, {result['cpu_ms_per_node_s']:.1f} ms CPU/s, "
        f"RSS {result['rss_mib_median']:.1f} MiB (PSS {result['pss_mib_median']:.1f})" + soak_line(result)
    )


def soak_line(result: dict[str, Any]) -> str:
    grown = result.get("rss_growth_mib")
    if not grown:
        return ""
    medians = ", ".join(f"{at / 60:.0f} min {statistics.median(r):.2f}" for at, r in result["rss_series"])
    return (
        f"; RSS over {grown['hours'] * 60:.0f} min grew by {grown['median']:+.2f} MiB per node"
        f" (median; most {grown['max']:+.2f}); median RSS by time: {medians}"
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
    parser.add_argument(
        "--rss-every", type=float, default=0.0, help="read RSS every this many seconds of the window (a soak)"
    )
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    if args.nodes < 2:
        parser.error("--nodes: at least 2")
    result = measure(args.nodes, args.settle, args.window, args.reference, args.seed, args.rss_every)
    print(describe(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0
