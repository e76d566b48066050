"""``python -m bench.testbed``: run the testbed's scenarios and write their results.

Every scenario runs on each variant asked for (all Pinewood, all Go reference,
half and half), each on a testbed of its own, and the results go to one JSON
file (``--json``; ``python -m bench report --only testbed`` runs them all into the
report, with plots).  ``calibrate``
measures the link emulator itself.  Ctrl-C stops the run and removes every
namespace and process it made.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.testbed import netns
from bench.testbed.calibrate import calibrate
from bench.testbed.scenarios import SCENARIOS, VARIANTS, Settings, run, with_overrides
from bench.testbed.summary import describe

DEFAULTS = Settings()
RESULTS = DEFAULTS.workdir / "results.json"


def _list(text: str, allowed: Sequence[str]) -> list[str]:
    items = [t for t in text.split(",") if t]
    unknown = [t for t in items if t not in allowed]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown: {', '.join(unknown)} (choose from {', '.join(allowed)})")
    return items


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.testbed", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--scenarios",
        type=lambda t: _list(t, (*SCENARIOS, "calibrate")),
        default=[*SCENARIOS, "calibrate"],
        help=f"comma-separated, of {', '.join(SCENARIOS)}, calibrate (default: all)",
    )
    p.add_argument(
        "--variants",
        type=lambda t: _list(t, VARIANTS),
        default=list(VARIANTS),
        help="comma-separated, of pinewood, go, mixed (default: all three)",
    )
    p.add_argument(
        "--graph", default=DEFAULTS.graph, help=f"graph file or generator spec (default {DEFAULTS.graph})"
    )
    p.add_argument("--seed", type=int, default=DEFAULTS.seed)
    p.add_argument("--duration", type=float, default=DEFAULTS.duration_s, help="seconds per scenario run")
    p.add_argument("--rest", type=float, default=DEFAULTS.rest_s, help="seconds at rest measured for cost")
    p.add_argument("--workdir", type=Path, default=DEFAULTS.workdir, help="node data and logs")
    p.add_argument(
        "--json", type=Path, default=RESULTS, help=f"where to write the results (default {RESULTS})"
    )
    p.add_argument(
        "--scale",
        default="",
        help="also a cold start on random graphs (mean degree 3) of these sizes, e.g. 8,16,32,48",
    )
    p.add_argument(
        "--scale-variants",
        default=["pinewood", "go"],
        type=lambda t: _list(t, VARIANTS),
        help="the networks of those runs (default: pinewood,go)",
    )
    p.add_argument(
        "--pinewood-arg", action="append", default=[], help="an extra argument for every Pinewood node"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = with_overrides(
        DEFAULTS,
        graph=args.graph,
        seed=args.seed,
        duration_s=args.duration,
        rest_s=args.rest,
        workdir=args.workdir,
    )
    try:
        netns.check_available()
    except netns.NamespaceError as exc:
        print(f"the testbed cannot run here: {exc}", file=sys.stderr)
        return 2
    # SIGINT and SIGTERM end the run through the cleanup of each testbed, also
    # when the shell that started it in the background set SIGINT to be ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    results: dict[str, Any] = {"settings": _settings_view(settings), "started": time.time(), "runs": []}
    try:
        for scenario in args.scenarios:
            if scenario == "calibrate":
                results["calibration"] = calibrate(settings.workdir / "calibrate")
                print(describe({"calibration": results["calibration"], "runs": []}), flush=True)
                continue
            for variant in args.variants:
                if scenario == "mobility" and variant != "pinewood":
                    continue  # LAN discovery: see bench.testbed.scenarios
                print(f"running {scenario} on {variant} ...", flush=True)
                outcome = run(scenario, variant, settings, args.pinewood_arg)
                results["runs"].append(outcome)
                print(describe({"runs": [outcome]}), flush=True)
        sizes = [int(n) for n in args.scale.split(",") if n.strip()]
        if sizes:
            results["scale"] = []
        for size in sizes:
            for variant in args.scale_variants:
                print(f"running cold on {size} nodes, {variant} ...", flush=True)
                sized = replace(settings, graph=f"er:{size}:3", stretch_pairs=0)
                outcome = run("cold", variant, sized, args.pinewood_arg)
                results["scale"].append(outcome)
                print(describe({"runs": [outcome]}), flush=True)
    except KeyboardInterrupt:
        print("interrupted: namespaces and processes removed", file=sys.stderr)
        return 130
    finally:
        netns.remove_leftovers()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.json}")
    return 0


def _settings_view(settings: Settings) -> dict[str, Any]:
    return {
        "graph": settings.graph,
        "seed": settings.seed,
        "duration_s": settings.duration_s,
        "probe_pairs_per_round": settings.probe_pairs,
        "probe_every_s": settings.probe_every_s,
        "probe_timeout_s": settings.probe_timeout_s,
    }
