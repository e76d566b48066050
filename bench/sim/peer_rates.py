"""How much signature work one honest peer asks of a node, at the busiest link.

Runs one simulator scenario and counts, on every directed link, the signed
frames it carries (bootstraps, tree announcements, wakeup broadcasts; each costs
the receiver a signature check) in every second of simulated time.  Prints the
highest count any link carried in one second and in ten seconds, by kind and
in total: the honest peak that a per-peer budget for expensive work must leave
room for.  Takes the simulator's own options (``python -m bench.sim``).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Sequence

from bench.sim.cli import add_arguments, config_from
from bench.sim.runner import FRAME_NAMES, Simulation
from router.wire import FrameType

SIGNED = {int(FrameType.BOOTSTRAP), int(FrameType.TREE_ANNOUNCEMENT), int(FrameType.WAKEUP_BROADCAST)}


class LinkRates:
    """Signed frames per directed link, kind and whole simulated second."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], dict[int, Counter[int]]] = {}

    def observe(self, a: str, b: str, second: int, kind: int) -> None:
        if kind in SIGNED:
            self.counts.setdefault((a, b), {}).setdefault(kind, Counter())[second] += 1

    def peaks(self, window_s: int) -> dict[str, int]:
        """The most frames of each kind (and of all) one link carried in ``window_s`` seconds."""
        best: Counter[str] = Counter()
        for kinds in self.counts.values():
            last = max(max(seconds) for seconds in kinds.values())
            totals = [0] * (last + 1)
            for kind, seconds in kinds.items():
                series = [seconds.get(t, 0) for t in range(last + 1)]
                for t, n in enumerate(series):
                    totals[t] += n
                best[FRAME_NAMES[kind]] = max(best[FRAME_NAMES[kind]], window_peak(series, window_s))
            best["all signed"] = max(best["all signed"], window_peak(totals, window_s))
        return dict(best)


def window_peak(series: list[int], window_s: int) -> int:
    """The largest sum of ``window_s`` consecutive entries (of fewer, if the series is shorter)."""
    total = sum(series[:window_s])
    peak = total
    for t in range(window_s, len(series)):
        total += series[t] - series[t - window_s]
        peak = max(peak, total)
    return peak


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sim.peer_rates", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    simulation = Simulation(config_from(args))
    rates = LinkRates()
    observe = simulation.mesh.frame_observer
    mesh = simulation.mesh

    def both(a: str, b: str, data: bytes) -> None:
        rates.observe(a, b, int(mesh.now), data[5])
        if observe is not None:
            observe(a, b, data)

    mesh.frame_observer = both
    result = simulation.run()
    out = {
        "graph": args.graph,
        "scenario": args.scenario,
        "nodes": len(mesh.nodes),
        "simulated_s": args.duration,
        "busiest_link_per_1_s": rates.peaks(1),
        "busiest_link_per_10_s": rates.peaks(10),
        "snake_correct_at_s": result.get("snake_correct_at_s"),
    }
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
