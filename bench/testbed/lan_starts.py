"""Nodes started together on one LAN, again and again: does each end with
exactly one peering per neighbour, and how soon?

``python -m bench.testbed.lan_starts [--rounds 20] [--sizes 2 3] [--delay-ms 100] [--node-arg ARG]``

Each round is a fresh testbed (its own keys) of ``size`` Pinewood nodes, every
pair linked with the given one-way delay, peers found only by the LAN beacons,
all launched at once.  Both ends of a pair dial when each hears the other's
beacon before the other's dial reaches it, so the longer the delay, the more
rounds race; the node keeps the one peering both ends agree on and closes the
other ("duplicate peerings closed" in its counters).  Per round it records:

- ``covered_s``: from the launch until every node peers with every other;
- ``exact_s``: from the launch until every node holds exactly one peering per
  neighbour and keeps it so to the end of the round (5 s after the launch, and
  at least a second after ``covered_s``);
- ``duplicate_seen``: whether any poll (every 20 ms) saw two peerings to one
  neighbour, and ``raced``: how many duplicates the nodes closed.

A round is good when ``exact_s`` comes at most a second after ``covered_s``.

Needs root (network namespaces); the traffic stays in the namespaces.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.testbed.bed import Discovery, Kind, Testbed
from bench.testbed.medium import LinkShape

DUPLICATE_CLOSED = "duplicate peerings closed"
CONVERGE_TIMEOUT_S = 30.0
POLL_S = 0.02
HOLD_S = 1.0
"""How long after every node peers with every other it must hold exactly one peering each."""
END_S = 5.0
"""A round lasts this long after the launch: two more rounds of beacons after the first."""


@dataclass(frozen=True, slots=True)
class Round:
    size: int
    seed: int
    covered_s: float | None
    """From the launch until every node first peered with every other."""
    exact_s: float | None
    """From the launch until the last time anything but one peering per neighbour
    was seen (the state from then to the end of the round); None if the round
    ended with a duplicate or a neighbour missing."""
    duplicate_seen: bool
    """Whether any poll saw a node with two peerings to one neighbour."""
    raced: int
    """Duplicates the nodes closed, by their counters."""

    @property
    def ok(self) -> bool:
        """Every neighbour covered, and exactly one peering each within a second of that, to the end."""
        return (
            self.covered_s is not None
            and self.exact_s is not None
            and self.exact_s - self.covered_s <= HOLD_S
        )


def _peerings(bed: Testbed, size: int) -> list[Counter[str]]:
    """For each node, how many peerings it holds to each key."""
    return [Counter(bed.peer_keys(i)) for i in range(size)]


def _covered(bed: Testbed, held: list[Counter[str]]) -> bool:
    keys = [n.key for n in bed.nodes]
    return all(set(held[i]) >= {k for j, k in enumerate(keys) if j != i} for i in range(len(keys)))


def _exact(bed: Testbed, held: list[Counter[str]]) -> bool:
    return _covered(bed, held) and all(
        sum(c.values()) == len(bed.nodes) - 1 and max(c.values()) == 1 for c in held
    )


def _bed(workdir: Path, size: int, seed: int, delay_s: float, node_args: Sequence[str]) -> Testbed:
    shape = LinkShape(delay_s=delay_s, rate_bps=100e6, queue_s=0.05)
    return Testbed(
        workdir=workdir / f"lan{size}-{seed}",
        kinds=[Kind.PINEWOOD] * size,
        edges=[(a, b) for a in range(size) for b in range(a + 1, size)],
        shape=lambda a, b: shape,
        discovery=Discovery.LAN,
        seed=seed,
        pinewood_args=node_args,
    )


def _observe(bed: Testbed, size: int, seed: int, end_s: float) -> Round:
    """Launch every node at once and watch their peerings until ``end_s`` after
    the launch (and at least :data:`HOLD_S` after all have met)."""
    started = bed.start_all()
    covered_at: float | None = None
    exact_from: float | None = None
    duplicate_seen = False
    while True:
        held = _peerings(bed, size)
        now = time.monotonic()
        duplicate_seen = duplicate_seen or any(max(c.values(), default=0) > 1 for c in held)
        if covered_at is None and _covered(bed, held):
            covered_at = now
        if not _exact(bed, held):
            exact_from = None
        elif exact_from is None:
            exact_from = now
        if now - started >= (CONVERGE_TIMEOUT_S if covered_at is None else end_s) and (
            covered_at is None or now - covered_at >= HOLD_S
        ):
            break
        time.sleep(POLL_S)
    raced = sum(
        int(bed.api(i, "GET", "/status").get("counters", {}).get(DUPLICATE_CLOSED, 0)) for i in range(size)
    )
    if exact_from is None:  # for whoever looks into it: what each node held at the end
        for i in range(size):
            (bed.workdir / f"n{i}" / "peers.json").write_text(
                json.dumps(bed.api(i, "GET", "/peers"), indent=1)
            )
    return Round(
        size=size,
        seed=seed,
        covered_s=None if covered_at is None else round(covered_at - started, 3),
        exact_s=None if exact_from is None else round(exact_from - started, 3),
        duplicate_seen=duplicate_seen,
        raced=raced,
    )


def one_round(workdir: Path, size: int, seed: int, delay_s: float, node_args: Sequence[str] = ()) -> Round:
    """One start of ``size`` nodes on a testbed of its own, with its own keys."""
    with _bed(workdir, size, seed, delay_s, node_args) as bed:
        return _observe(bed, size, seed, END_S)


def restarted_rounds(
    workdir: Path, size: int, rounds: int, delay_s: float, end_s: float = HOLD_S + 1.0
) -> list[Round]:
    """``rounds`` starts of the same nodes on one testbed: all are killed after
    each round and launched together again (the same keys, so the same pairs
    race).  Quicker than a testbed a round, for the test suite."""
    out = []
    with _bed(workdir, size, 1, delay_s, ()) as bed:
        for _ in range(rounds):
            out.append(_observe(bed, size, 1, end_s))
            for i in range(size):
                bed.stop(i)
    return out


def summary(rounds: Sequence[Round]) -> dict[str, Any]:
    gaps = [r.exact_s - r.covered_s for r in rounds if r.exact_s is not None and r.covered_s is not None]
    return {
        "rounds": len(rounds),
        "ok": sum(r.ok for r in rounds),
        "rounds_that_raced": sum(r.raced > 0 for r in rounds),
        "duplicates_closed": sum(r.raced for r in rounds),
        "duplicates_seen": sum(r.duplicate_seen for r in rounds),
        "worst_exact_after_covered_s": round(max(gaps), 3) if gaps else None,
        "median_covered_s": sorted(r.covered_s for r in rounds if r.covered_s is not None)[len(rounds) // 2]
        if all(r.covered_s is not None for r in rounds)
        else None,
    }


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.testbed.lan_starts", description=__doc__)
    parser.add_argument("--rounds", type=int, default=20, help="starts per size")
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 3], help="nodes per LAN")
    parser.add_argument("--delay-ms", type=float, default=100.0, help="one-way delay of every link")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/pinewood-lan-starts"))
    parser.add_argument(
        "--node-arg",
        action="append",
        default=[],
        help="an extra argument for every node (--node-arg=--routing-extensions=path-repair: no tie-break)",
    )
    parser.add_argument("--out", type=Path, help="write every round and the summary here (JSON)")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"delay_ms": args.delay_ms, "node_args": args.node_arg, "sizes": {}}
    failed = False
    for size in args.sizes:
        rounds = []
        for seed in range(1, args.rounds + 1):
            outcome = one_round(args.workdir, size, seed, args.delay_ms / 1000, args.node_arg)
            rounds.append(outcome)
            print(json.dumps(asdict(outcome)), flush=True)
        results["sizes"][str(size)] = {"summary": summary(rounds), "rounds": [asdict(r) for r in rounds]}
        print(f"{size} nodes: {json.dumps(results['sizes'][str(size)]['summary'])}", flush=True)
        failed = failed or not all(r.ok for r in rounds)
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
