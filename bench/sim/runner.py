"""The simulation loop and the figures it produces.

The mesh runs in steps of simulated time; between steps the runner applies due
scenario events, moves probe rounds on, starts new ones and samples the state
(tree agreement, snake correctness, control traffic).  The result is a plain
dictionary, ready for JSON.
"""

from __future__ import annotations

import math
import random
import resource
import sys
import time
from collections import Counter
from dataclasses import asdict
from typing import Any

from tqdm import tqdm

from bench.sim.metrics import (
    core_state_breakdown,
    core_state_bytes,
    percentile,
    snake_correctness,
    summarise,
    table_sizes,
    tree_agreement,
)
from bench.sim.probes import KINDS, Prober, round_summary
from bench.sim.scenarios import plan
from bench.sim.setup import SimConfig, build_mesh
from router.routing.outputs import Deliver
from router.wire.extension import EXTENSION_FRAME_TYPE
from router.wire.frames import FrameType

STEP_S = 0.25
TRAFFIC = int(FrameType.TRAFFIC)
FRAME_NAMES = {int(t): t.name.lower() for t in FrameType} | {EXTENSION_FRAME_TYPE: "extension"}


class Simulation:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        wall = time.perf_counter()
        self.built = build_mesh(config, self.rng)
        self.build_wall_s = time.perf_counter() - wall
        self.mesh = self.built.mesh
        self.events = plan(config, self.built, random.Random(config.seed + 1))
        self.log: list[dict[str, Any]] = []
        self.prober = Prober(self.mesh, random.Random(config.seed + 2), config.pairs, config.probe_window_s)
        self.control_frames: Counter[str] = Counter()
        self.control_bytes = 0
        self.timeline: list[dict[str, Any]] = []
        self.mesh.frame_observer = self._observe
        self.mesh.delivery_observer = self._delivered

    def _observe(self, _a: str, _b: str, data: bytes) -> None:
        kind = data[5]
        if kind == TRAFFIC:
            self.prober.observe_traffic(data)
        else:
            self.control_frames[FRAME_NAMES.get(kind, "invalid")] += 1
            self.control_bytes += len(data)

    def _delivered(self, name: str, out: Deliver) -> None:
        self.prober.observe_delivery(name, out)

    def _sample(self, since: float, frames_before: int, bytes_before: int) -> None:
        mesh = self.mesh
        nodes = max(1, len(mesh.nodes))
        span = max(mesh.now - since, 1e-9)
        frames = sum(self.control_frames.values())
        self.timeline.append(
            {
                "t": round(mesh.now, 3),
                "nodes": len(mesh.nodes),
                "tree": tree_agreement(mesh),
                "snake": snake_correctness(mesh),
                "control_frames_per_node_s": (frames - frames_before) / nodes / span,
                "control_bytes_per_node_s": (self.control_bytes - bytes_before) / nodes / span,
            }
        )

    def run(self) -> dict[str, Any]:
        config, mesh = self.config, self.mesh
        wall_start = time.perf_counter()
        events = list(self.events)
        next_probe = 0.0
        next_sample = 0.0
        last_sample = (0.0, 0, 0)
        bar = tqdm(
            total=round(config.duration_s),
            unit="sim s",
            disable=not config.progress,
            file=sys.stderr,
            desc=f"{config.scenario} {config.graph}",
        )
        t = 0.0
        while t < config.duration_s - 1e-9:
            t = min(t + STEP_S, config.duration_s)
            while events and events[0].at <= t:
                event = events.pop(0)
                mesh.run_until(event.at)
                self.log.append({"t": round(event.at, 3), "kind": event.kind, "what": event.action()})
            mesh.run_until(t)
            self.prober.advance()
            if t >= next_probe - 1e-9 and t + 3 * config.probe_window_s <= config.duration_s + 1e-9:
                self.prober.start_round()
                next_probe += config.probe_every_s
            if t >= next_sample - 1e-9:
                self._sample(*last_sample)
                last_sample = (t, sum(self.control_frames.values()), self.control_bytes)
                next_sample += config.sample_every_s
            bar.update(round(t) - bar.n)
        bar.close()
        while not self.prober.settled():  # let the last rounds finish
            mesh.run_for(STEP_S)
            self.prober.advance()
        wall = time.perf_counter() - wall_start
        return self._result(wall)

    # ------------------------------------------------------------ results

    def _result(self, wall: float) -> dict[str, Any]:
        config, mesh = self.config, self.mesh
        t0 = 0.0 if config.scenario == "cold" else config.event_at_s
        rounds = [round_summary(r, mesh) for r in self.prober.rounds]
        after = [r for r in rounds if r["t"] >= t0 - 1e-9]
        both = lambda s: s["tree"] == 1.0 and s["snake"] == 1.0  # noqa: E731
        cold = config.scenario == "cold"
        converged_at = _recovered(self.timeline, t0, both, cold)
        stable_from = _stable_from(self.timeline, t0, both)
        # Stretch of a settled network: rounds from when it has converged, else from the event.
        stretch_from = converged_at if converged_at is not None else t0
        if config.scenario == "churn":
            stretch_from = t0  # under churn the network never settles: measure throughout
        stretch: dict[str, Any] = {}
        samples: dict[str, list[float]] = {}
        for kind in ("first", "established"):
            values = [
                p.hops / p.shortest
                for r in self.prober.rounds
                if r.started >= stretch_from - 1e-9
                for p in r.probes[kind]
                if p.delivered and p.shortest > 0
            ]
            samples[kind] = sorted(values)
            stretch[kind] = summarise(values).as_dict()
        # Time from sending to delivery, over the rounds after the event: a first
        # frame's is what a session's first packet waits.
        latency: dict[str, dict[str, float]] = {}
        for kind in ("first", "established"):
            ordered = sorted(
                (p.delivered_at - p.sent_at) * 1000
                for r in self.prober.rounds
                if r.started >= t0 - 1e-9
                for p in r.probes[kind]
                if p.delivered
            )
            latency[kind] = {
                "count": len(ordered),
                "p50": percentile(ordered, 0.50) if ordered else math.nan,
                "p99": percentile(ordered, 0.99) if ordered else math.nan,
            }
        full_at = _recovered(after, t0, _complete, cold)
        settled = [r for r in after if converged_at is not None and r["t"] >= converged_at - 1e-9]
        delivery = {kind: _ratio(after, kind) for kind in KINDS}
        delivery["first_after_convergence"] = _ratio(settled, "first")
        delivery["first_from_10s"] = _ratio([r for r in after if r["t"] >= t0 + 10.0 - 1e-9], "first")
        stable = None
        for r in reversed(after):
            if not _complete(r):
                break
            stable = r["t"]
        steady = [s for s in self.timeline if s["t"] >= max(t0, stretch_from)] or self.timeline[-1:]
        return {
            "config": asdict(self.config),
            "graph": {
                "name": config.graph,
                "nodes": len(self.built.topology.nodes),
                "edges": len(self.built.topology.edges),
                "skipped_edges": self.built.skipped_edges,
            },
            "signatures": config.signatures,
            "events": self.log,
            "timeline": self.timeline,
            "rounds": rounds,
            "convergence": {
                "event_at": t0,
                "tree_at": _since(_recovered(self.timeline, t0, lambda s: s["tree"] == 1.0, cold), t0),
                "snake_at": _since(_recovered(self.timeline, t0, lambda s: s["snake"] == 1.0, cold), t0),
                "converged_at": _since(converged_at, t0),
                "stable_from": _since(stable_from, t0),
                "first_full_delivery_at": _since(full_at, t0),
                "stable_full_delivery_from": _since(stable, t0),
            },
            "delivery": delivery,
            "stretch_from": stretch_from,
            "stretch": stretch,
            "latency_ms": latency,
            "stretch_samples": samples,
            "control": {
                "frames_per_node_s": _mean(s["control_frames_per_node_s"] for s in steady),
                "bytes_per_node_s": _mean(s["control_bytes_per_node_s"] for s in steady),
                "frames_by_type": dict(self.control_frames),
            },
            "tables": self._tables(),
            "memory": self._memory(),
            "wall_s": wall,
            "build_wall_s": self.build_wall_s,
            "simulated_s": mesh.now,
            "wall_per_sim_s": wall / mesh.now if mesh.now else math.nan,
        }

    def _tables(self) -> dict[str, dict[str, float]]:
        sizes = [table_sizes(node.core) for node in self.mesh.nodes.values()]
        out: dict[str, dict[str, float]] = {}
        for name in sizes[0] if sizes else ():
            values = [s[name] for s in sizes]
            out[name] = {"mean": sum(values) / len(values), "max": max(values)}
        return out

    def _memory(self) -> dict[str, Any]:
        names = sorted(self.mesh.nodes)
        picked = random.Random(self.config.seed + 3).sample(names, min(len(names), self.config.memory_sample))
        sizes = [core_state_bytes(self.mesh.nodes[n].core) for n in picked]
        parts: Counter[str] = Counter()
        for n in picked:
            parts.update(core_state_breakdown(self.mesh.nodes[n].core))
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        return {
            "sampled_nodes": len(sizes),
            "state_bytes_mean": sum(sizes) / len(sizes) if sizes else math.nan,
            "state_bytes_max": max(sizes, default=0),
            "process_peak_rss_bytes": peak_kib * 1024,
            "process_peak_rss_per_node_bytes": peak_kib * 1024 / max(1, len(self.mesh.nodes)),
            "breakdown_bytes_mean": {k: v / max(1, len(picked)) for k, v in parts.items()},
        }


def _recovered(
    items: list[dict[str, Any]], t0: float, test: Any, failed_at_start: bool = False
) -> float | None:
    """When ``test`` holds again after it first failed at or after ``t0``: ``t0`` if it never
    failed, ``None`` if it never held again.  ``items`` are samples or rounds (key ``t``).
    On a cold start nothing holds at ``t0`` (``failed_at_start``)."""
    failed = failed_at_start
    for item in items:
        if item["t"] < t0 - 1e-9:
            continue
        if not test(item):
            failed = True
        elif failed:
            return float(item["t"])
    return None if failed else t0


def _stable_from(timeline: list[dict[str, Any]], t0: float, test: Any) -> float | None:
    """The start of the final run of samples (after ``t0``) that all pass ``test``."""
    start: float | None = None
    for sample in timeline:
        if sample["t"] < t0 - 1e-9:
            continue
        if not test(sample):
            start = None
        elif start is None:
            start = float(sample["t"])
    return start


def _since(at: float | None, t0: float) -> float | None:
    return None if at is None else round(at - t0, 3)


def _complete(r: dict[str, Any]) -> bool:
    first = r["first"]
    return bool(first["sent"] and first["delivered"] == first["sent"])


def _ratio(rounds: list[dict[str, Any]], kind: str) -> float:
    sent = sum(r[kind]["sent"] for r in rounds)
    return sum(r[kind]["delivered"] for r in rounds) / sent if sent else math.nan


def _mean(values: Any) -> float:
    items = list(values)
    return sum(items) / len(items) if items else math.nan


def simulate(config: SimConfig) -> dict[str, Any]:
    return Simulation(config).run()
