"""Command line of the simulator (``python -m bench.sim``, ``pinewood bench sim``)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.sim.runner import simulate
from bench.sim.setup import SCENARIOS, SimConfig
from router.wire.extension import EXTENSION_NAMES

DEFAULTS = SimConfig()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "--graph",
        default=DEFAULTS.graph,
        help="graph file (in ../shared/graphs) or generator spec, e.g. ba:1000:2",
    )
    add("--scenario", choices=SCENARIOS, default=DEFAULTS.scenario)
    add("--duration", type=float, default=DEFAULTS.duration_s, help="simulated seconds")
    add("--event-at", type=float, default=DEFAULTS.event_at_s, help="when the scenario's event happens")
    add("--seed", type=int, default=DEFAULTS.seed)
    add("--latency", default=DEFAULTS.latency, help="fixed:S, uniform:MIN:MAX or lognormal:MEDIAN:SIGMA")
    add("--loss", type=float, default=DEFAULTS.loss, help="loss rate of traffic frames")
    add("--pairs", type=int, default=DEFAULTS.pairs, help="sampled pairs per probe round")
    add("--probe-every", type=float, default=DEFAULTS.probe_every_s)
    add("--probe-window", type=float, default=DEFAULTS.probe_window_s)
    add("--sample-every", type=float, default=DEFAULTS.sample_every_s)
    add(
        "--churn",
        type=float,
        default=DEFAULTS.churn_per_min,
        help="fraction of nodes leaving or joining a minute",
    )
    add("--cuts", type=int, default=DEFAULTS.cuts)
    add("--memory-sample", type=int, default=DEFAULTS.memory_sample, help="nodes whose state is measured")
    add(
        "--bootstrap-interval",
        type=float,
        default=DEFAULTS.bootstrap_interval_s,
        help="experiment: seconds between bootstraps (the reference's, and every daemon's, is 5)",
    )
    add(
        "--reference-bootstrap",
        action="store_true",
        help="bootstrap on the reference's schedule only, without settling bootstraps",
    )
    add(
        "--extensions",
        type=extension_bits,
        default=0,
        help="Pinewood's routing extensions, comma-separated (path-repair, lookahead, quiet-paths); "
        "default none, as the reference",
    )
    add(
        "--extended-fraction",
        type=float,
        default=DEFAULTS.extended_fraction,
        help="the share of the nodes that run the extensions (the rest behave as reference nodes)",
    )
    add("--no-signatures", action="store_true", help="skip ed25519 signing and verifying (simulator only)")
    add("--progress", action="store_true", help="show a progress bar")
    add("--json", action="store_true", help="print the full result as JSON")
    add("--out", type=Path, help="also write the JSON result to this file")


def extension_bits(text: str) -> int:
    """``path-repair,...`` as extension bits (``none`` or nothing: 0)."""
    bits = 0
    for word in filter(None, (w.strip() for w in text.split(","))):
        if word == "none":
            continue
        if word not in EXTENSION_NAMES:
            known = ", ".join(EXTENSION_NAMES)
            raise argparse.ArgumentTypeError(f"unknown extension {word!r}; known: {known}")
        bits |= EXTENSION_NAMES[word]
    return bits


def config_from(args: argparse.Namespace) -> SimConfig:
    return SimConfig(
        graph=args.graph,
        scenario=args.scenario,
        duration_s=args.duration,
        event_at_s=args.event_at,
        seed=args.seed,
        latency=args.latency,
        loss=args.loss,
        signatures=not args.no_signatures,
        pairs=args.pairs,
        probe_every_s=args.probe_every,
        probe_window_s=args.probe_window,
        sample_every_s=args.sample_every,
        churn_per_min=args.churn,
        cuts=args.cuts,
        memory_sample=args.memory_sample,
        progress=args.progress,
        bootstrap_interval_s=args.bootstrap_interval,
        settle_window_s=0.0 if args.reference_bootstrap else DEFAULTS.settle_window_s,
        extensions=args.extensions,
        extended_fraction=args.extended_fraction,
    )


def _fmt(value: Any, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.2f}{unit}" if isinstance(value, float) else f"{value}{unit}"


def _experiment(result: dict[str, Any]) -> list[str]:
    interval = result["config"]["bootstrap_interval_s"]
    lines = []
    if interval != DEFAULTS.bootstrap_interval_s:
        lines.append(f"EXPERIMENT: bootstrap every {interval:g} s (the reference and the daemon: every 5 s)")
    if result["config"].get("settle_window_s", DEFAULTS.settle_window_s) == 0:
        lines.append("the reference's bootstrap schedule: no settling bootstraps")
    return lines


def describe(result: dict[str, Any]) -> str:
    """A short human summary of one run."""
    g, conv, st, mem = result["graph"], result["convergence"], result["stretch"], result["memory"]
    lines = [
        f"{result['config']['scenario']} on {g['name']}: {g['nodes']} nodes, {g['edges']} edges"
        + (f" ({g['skipped_edges']} over port capacity left out)" if g["skipped_edges"] else ""),
        "signatures: " + ("signed and verified" if result["signatures"] else "OFF (--no-signatures)"),
        *_experiment(result),
        f"converged {_fmt(conv['converged_at'], ' s')} after the event (tree {_fmt(conv['tree_at'], ' s')},"
        f" snake {_fmt(conv['snake_at'], ' s')}); first round with every pair delivered at"
        f" {_fmt(conv['first_full_delivery_at'], ' s')}",
        "delivery: " + ", ".join(f"{k} {_fmt(v * 100, '%')}" for k, v in result["delivery"].items()),
    ]
    for kind, s in st.items():
        lines.append(
            f"stretch {kind}: mean {_fmt(s['mean'])} p50 {_fmt(s['p50'])} p95 {_fmt(s['p95'])}"
            f" max {_fmt(s['max'])} (n={s['count']})"
        )
    lines += [
        f"control traffic per node: {_fmt(result['control']['frames_per_node_s'])} frames/s,"
        f" {_fmt(result['control']['bytes_per_node_s'])} B/s",
        f"router state per node: mean {mem['state_bytes_mean'] / 1024:.1f} KiB,"
        f" max {mem['state_bytes_max'] / 1024:.1f} KiB ({mem['sampled_nodes']} sampled)",
        f"wall {result['wall_s']:.1f} s for {result['simulated_s']:.0f} s simulated"
        f" ({result['wall_per_sim_s']:.3f} wall s per simulated s)",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sim", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    result = simulate(config_from(args))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(describe(result))
    sys.stdout.flush()
    return 0
