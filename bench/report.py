"""``python -m bench report``: run the benchmarks and write ``bench/results/REPORT.md``.

Sections, each runnable alone with ``--only`` (a comma-separated list):

``sim``         simulator scenarios (:mod:`bench.sim`), with PNG plots
``throughput``  the process chain for every link type (:mod:`bench.throughput`)
``sessions``    QUIC sessions through the gateway (:mod:`bench.sessions`)
``relay``       relay load (:mod:`bench.relay`)
``hostile``     attacks on a node while its good peers ping through it (:mod:`bench.hostile`)
``fuzz``        coverage-guided fuzzing of the wire decoders (:mod:`bench.fuzz`)
``testbed``     real processes on emulated links, Pinewood beside the Go reference (:mod:`bench.testbed`)
``federation``  two Synapses across the testbed, through Pinewood and directly
                (:mod:`bench.testbed.federation`)
``node``        one node's start-up and memory, and a network's cost at rest
                (:mod:`bench.startup`, :mod:`bench.idle`)

Every section keeps its figures in ``<out>/<section>.json``; the report is
written from all of them, so a section that is not re-run keeps its last
figures (and says when they were measured).  ``--quick`` runs a reduced set in
seconds: small graphs for the simulator and tiny durations for the processes.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.report_hostile import render_hostile
from bench.report_node import previous_node, render_node, run_node
from bench.report_text import EXTENDED, render
from bench.sim import plots
from bench.sim.runner import simulate
from bench.sim.setup import SimConfig
from bench.testbed import plots as testbed_plots
from bench.testbed.report import render_federation, render_testbed

SECTIONS = ("sim", "throughput", "sessions", "relay", "hostile", "fuzz", "testbed", "federation", "node")
LINKS = ("tcp", "tls", "quic", "ws")
DEFAULT_OUT = Path(__file__).resolve().parent / "results"
Progress = Callable[[str], None]


def sim_scenarios(quick: bool) -> list[SimConfig]:
    """The simulator runs of the report (``quick``: small graphs, short runs)."""
    if quick:
        base = SimConfig(graph="sim.txt", duration_s=40.0, event_at_s=20.0, pairs=30, probe_every_s=2.0)
        return [
            base,
            replace(base, scenario="root-loss"),
            replace(base, scenario="churn", churn_per_min=0.2),
            replace(base, graph="ba:60:2", pairs=10, probe_every_s=4.0),
        ]
    g250 = SimConfig(graph="graph-250.txt", duration_s=80.0, event_at_s=50.0)
    # Scale runs: churn from 40 s (5 % of the nodes a minute) to 100 s, past the wakeup round at 60 s.
    scale = SimConfig(duration_s=100.0, event_at_s=40.0, pairs=50, probe_every_s=4.0)
    return [
        g250,
        replace(g250, scenario="root-loss", duration_s=110.0),
        replace(g250, scenario="link-cuts", duration_s=90.0, cuts=10),
        replace(g250, scenario="mobility", duration_s=90.0),
        replace(g250, scenario="churn", duration_s=170.0),
        # The same with Pinewood's extensions (the daemon's default) on every node,
        # and under churn on half of them too: same seeds, same events.
        replace(g250, extensions=EXTENDED),
        replace(g250, scenario="churn", duration_s=170.0, extensions=EXTENDED),
        replace(g250, scenario="churn", duration_s=170.0, extensions=EXTENDED, extended_fraction=0.5),
        replace(g250, settle_window_s=0.0),
        SimConfig(graph="ba:100:2", duration_s=75.0, pairs=50),
        SimConfig(graph="ba:300:2", duration_s=75.0, pairs=50),
        SimConfig(graph="ba:1000:2", duration_s=75.0, pairs=50, probe_every_s=4.0),
        SimConfig(graph="ba:1000:2", duration_s=75.0, pairs=50, probe_every_s=4.0, extensions=EXTENDED),
        replace(scale, graph="ba:1000:2", scenario="churn"),
        replace(scale, graph="fc00.txt", scenario="cold", duration_s=70.0),
        replace(scale, graph="fc00.txt", scenario="churn"),
        replace(scale, graph="yggdrasil.txt", scenario="cold", duration_s=70.0),
        SimConfig(
            graph="ba:10000:2",
            duration_s=30.0,
            signatures=False,
            pairs=20,
            probe_every_s=5.0,
            sample_every_s=5.0,
            memory_sample=30,
        ),
    ]


def run_sim(quick: bool, out: Path, progress: bool, say: Progress) -> dict[str, Any]:
    results = []
    for config in sim_scenarios(quick):
        extended = ""
        if config.extensions:
            extended = f", extensions {config.extensions} on {config.extended_fraction:.0%}"
        say(f"sim: {config.scenario} on {config.graph} for {config.duration_s:.0f} s simulated{extended}")
        results.append(simulate(replace(config, progress=progress)))
    g250 = [
        r
        for r in results
        if r["graph"]["nodes"] == results[0]["graph"]["nodes"]
        and r["config"]["bootstrap_interval_s"] == results[0]["config"]["bootstrap_interval_s"]
    ]
    cold = [
        r for r in results if r["config"]["scenario"] == "cold" and r["config"]["bootstrap_interval_s"] == 5.0
    ]
    pictures = {
        "convergence": plots.convergence(g250, out / "sim-convergence.png").name,
        "stretch": plots.stretch_cdf(
            [r for r in results if r["config"]["graph"] in ("graph-250.txt", "yggdrasil.txt") and r in cold],
            out / "sim-stretch-cdf.png",
        ).name,
        "control": plots.control_traffic(g250, out / "sim-control-traffic.png").name,
        "memory": plots.memory(
            [
                r
                for r in results
                if r["config"]["scenario"] == "cold"
                and r["config"]["graph"].startswith("ba:")
                and not r["config"]["extensions"]
            ],
            out / "sim-memory.png",
        ).name,
    }
    for r in results:  # the samples are in the plots; keep the JSON readable
        r.pop("stretch_samples", None)
    return {"runs": results, "plots": pictures}


def _module_json(module: str, args: list[str], say: Progress) -> dict[str, Any]:
    command = [sys.executable, "-m", module, *args, "--json"]
    say("running " + " ".join(command[1:]))
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    took = time.perf_counter() - started
    if proc.returncode != 0:
        return {"argv": command[1:], "error": proc.stderr.strip()[-2000:], "run_wall_s": took}
    result: dict[str, Any] = json.loads(proc.stdout)
    return {"argv": command[1:], "result": result, "run_wall_s": took}


def run_throughput(quick: bool, say: Progress) -> dict[str, Any]:
    """Each link type's chain; QUIC peerings on each engine (qh3 is the default)."""
    runs, seconds = ("1", "1") if quick else ("3", "5")
    chains: dict[str, list[str]] = {link: ["--link", link] for link in (("tcp",) if quick else LINKS)}
    chains["tcp"].append("--floor")  # what processor contention alone costs the ping
    if not quick:
        chains["tcp, two floods"] = ["--link", "tcp", "--floods", "2"]
        chains["quic"] = ["--link", "quic", "--quic-engine", "qh3"]
        chains["quic (aioquic)"] = ["--link", "quic", "--quic-engine", "aioquic"]
    return {
        "links": {
            name: _module_json("bench.throughput", [*args, "--runs", runs, "--seconds", seconds], say)
            for name, args in chains.items()
        }
    }


def previous_throughput(path: Path) -> dict[str, Any] | None:
    """The last stored throughput run's rows, kept beside the new run's so the
    report shows before and after."""
    if not path.is_file():
        return None
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
        rows = {
            name: {
                key: entry["result"][key]
                for key in (
                    "router_frames_s",
                    "router_vs_baseline",
                    "ping_p50_ms_under_load",
                    "ping_p99_ms_under_load",
                )
            }
            for name, entry in old["links"].items()
            if "result" in entry
        }
    except (ValueError, KeyError, TypeError):
        return None
    return {"measured": old.get("measured", "?"), "links": rows}


def _stored(path: Path) -> dict[str, Any] | None:
    """A section's stored figures, or None if there are none (or unreadable)."""
    try:
        stored: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return stored


def run_sessions(quick: bool, say: Progress) -> dict[str, Any]:
    args = ["--runs", "1", "--seconds", "1", "--clients", "2"] if quick else []
    return _module_json("bench.sessions", args, say)


def run_relay(quick: bool, say: Progress) -> dict[str, Any]:
    return _module_json("bench.relay", ["--quick"] if quick else [], say)


def run_hostile(quick: bool, say: Progress) -> dict[str, Any]:
    return _module_json("bench.hostile", ["--quick"] if quick else [], say)


def run_fuzz(quick: bool, say: Progress) -> dict[str, Any]:
    return _module_json("bench.fuzz", ["--runs", "20000"] if quick else [], say)


def _module_file_json(module: str, args: list[str], raw: Path, say: Progress) -> dict[str, Any]:
    """Run ``module`` with ``--json raw``, and take (then remove) what it wrote there."""
    command = [sys.executable, "-m", module, "--json", str(raw), *args]
    say("running " + " ".join(command[1:]))
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"argv": command[1:], "error": (proc.stderr or proc.stdout).strip()[-2000:]}
    result: dict[str, Any] = json.loads(raw.read_text(encoding="utf-8"))
    raw.unlink()
    return {"argv": command[1:], "result": result}


def run_testbed(quick: bool, out: Path, say: Progress) -> dict[str, Any]:
    """Every testbed scenario on each network, and cold starts at growing sizes
    (quick: two scenarios, small and short, and no sizes)."""
    args = ["--scale", "8,16,32,48"]
    if quick:
        args = ["--scenarios", "cold,restarts", "--variants", "pinewood,go", "--graph", "er:6:2"]
        args += ["--duration", "15", "--rest", "3"]
    section = _module_file_json("bench.testbed", args, out / "testbed-run.json", say)
    if "result" in section:
        section["plots"] = draw_testbed_plots(section["result"], out)
    return section


def run_federation(out: Path, say: Progress) -> dict[str, Any]:
    """Synapse to Synapse across the testbed (it takes the Synapse harness of tests/e2e)."""
    return _module_file_json("bench.testbed.federation", [], out / "federation-run.json", say)


def draw_testbed_plots(result: dict[str, Any], out: Path) -> dict[str, str]:
    runs = result.get("runs", [])
    if not runs:
        return {}
    return {
        "delivery": testbed_plots.delivery(runs, out / "testbed-delivery.png").name,
        "first_answers": testbed_plots.first_answers(runs, out / "testbed-first-answer-cdf.png").name,
        "stretch": testbed_plots.stretch(runs, out / "testbed-stretch-cdf.png").name,
    }


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench report", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="reduced scenarios, seconds not minutes")
    parser.add_argument("--only", default=",".join(SECTIONS), help="sections to run: " + ", ".join(SECTIONS))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder")
    parser.add_argument("--progress", action="store_true", help="progress bars for simulator runs")
    parser.add_argument("--render", action="store_true", help="only rewrite REPORT.md from stored results")
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    command = "python -m bench report" + (" --quick" if args.quick else "")
    if set(only) != set(SECTIONS):
        command += f" --only {','.join(only)}"
    runners: dict[str, Callable[[], dict[str, Any]]] = {
        "sim": lambda: run_sim(args.quick, out, args.progress, say),
        "throughput": lambda: run_throughput(args.quick, say),
        "sessions": lambda: run_sessions(args.quick, say),
        "relay": lambda: run_relay(args.quick, say),
        "hostile": lambda: run_hostile(args.quick, say),
        "fuzz": lambda: run_fuzz(args.quick, say),
        "testbed": lambda: run_testbed(args.quick, out, say),
        "federation": lambda: run_federation(out, say),
        "node": lambda: run_node(args.quick),
    }
    for section in [] if args.render else only:
        started = time.perf_counter()
        figures = runners[section]()
        stamp = {
            "measured": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "command": command,
            "quick": args.quick,
            "wall_s": time.perf_counter() - started,
            "machine": machine(),
        }
        if section == "throughput":
            figures["previous"] = previous_throughput(out / "throughput.json")
        if section == "node":
            figures["previous"] = previous_node(_stored(out / "node.json"))
        (out / f"{section}.json").write_text(json.dumps({**stamp, **figures}, indent=1), encoding="utf-8")
    stored = {
        s: json.loads((out / f"{s}.json").read_text(encoding="utf-8"))
        for s in SECTIONS
        if (out / f"{s}.json").is_file()
    }
    text = render(stored)
    hostile = render_hostile(stored)
    if hostile:
        text += "\n" + "\n".join(hostile).rstrip() + "\n"
    node = render_node(stored)
    if node:
        text += "\n" + "\n".join(node).rstrip() + "\n"
    testbed = render_testbed(stored) + render_federation(stored)
    if testbed:
        text += "\n" + "\n".join(testbed).rstrip() + "\n"
    (out / "REPORT.md").write_text(text, encoding="utf-8")
    say(f"wrote {out / 'REPORT.md'}")
    return 0
