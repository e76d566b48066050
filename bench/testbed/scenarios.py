"""The testbed's scenarios: what happens to the network, and what is measured.

Each scenario runs on a fresh :class:`~bench.testbed.bed.Testbed` and returns a
JSON-ready dict.  Times are wall-clock seconds: these are real processes.

- ``cold``: every node starts at once; pings between random pairs from then on.
- ``wan``: ``cold`` on wide-area links (10-150 ms each way, 0.5-2% loss, a rate cap).
- ``harsh``: ``cold`` with every link at 150 ms each way (300 ms round trips per
  hop), 10% jitter and 2% loss: nothing tuned on loopback may fail here.
- ``flaps``: on a settled network, links go down for 1-8 s, one at a time.
- ``restarts``: on a settled network, a node is killed and started again every
  few seconds (a churn rate); its neighbours' and others' first answers from it.
- ``mobility``: nodes move (random waypoint on a plane) and hear each other
  within a radio range; peers found by LAN discovery (Pinewood only: the Go
  reference finds LAN peers only in its own daemon, which this machine must not run).
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.sim.setup import build_topology
from bench.testbed.bed import Discovery, Kind, Testbed
from bench.testbed.medium import LinkShape
from bench.testbed.probes import (
    CALL_ERRORS,
    Prober,
    Reachable,
    delivery_series,
    first_answers,
    log_marks,
    path_lengths,
    peerings_lost,
    quantiles,
    rest_cost,
)

VARIANTS = ("pinewood", "go", "mixed")
SCENARIOS = ("cold", "wan", "harsh", "flaps", "restarts", "mobility")


@dataclass(frozen=True, slots=True)
class Settings:
    graph: str = "er:12:3"
    seed: int = 1
    duration_s: float = 40.0
    probe_pairs: int = 6
    probe_every_s: float = 0.5
    probe_timeout_s: float = 2.0
    first_pairs: int = 20
    rest_s: float = 10.0
    stretch_pairs: int = 30
    restart_every_s: float = 6.0
    restart_down_s: float = 2.0
    flap_gap_s: float = 2.0
    mobility_range_m: float = 400.0
    mobility_area_m: float = 1000.0
    mobility_speed_m_s: tuple[float, float] = (5.0, 15.0)
    workdir: Path = Path("/tmp/pinewood-testbed")


LAN_SHAPE = LinkShape(delay_s=0.001, jitter_s=0.0002, rate_bps=100e6, queue_s=0.02)
RADIO_SHAPE = LinkShape(delay_s=0.002, jitter_s=0.001, loss=0.01, rate_bps=20e6, queue_s=0.05)


def wan_shape(seed: int, a: int, b: int) -> LinkShape:
    """One link of the WAN profile, drawn from the run's seed and the link's ends."""
    rng = random.Random(f"wan {seed} {min(a, b)} {max(a, b)}")
    delay = rng.uniform(0.010, 0.150)
    return LinkShape(
        delay_s=delay,
        jitter_s=delay * 0.05,
        loss=rng.uniform(0.005, 0.02),
        rate_bps=10e6,
        queue_s=0.1,
    )


HARSH_SHAPE = LinkShape(delay_s=0.150, jitter_s=0.015, loss=0.02, rate_bps=10e6, queue_s=0.1)


def kinds_for(variant: str, count: int, rng: random.Random) -> list[Kind]:
    if variant == "pinewood":
        return [Kind.PINEWOOD] * count
    if variant == "go":
        return [Kind.GO] * count
    kinds = [Kind.PINEWOOD] * (count // 2) + [Kind.GO] * (count - count // 2)
    rng.shuffle(kinds)
    return kinds


def topology(graph: str, seed: int) -> tuple[int, list[tuple[int, int]]]:
    topo = build_topology(graph, random.Random(seed))
    index = {name: i for i, name in enumerate(topo.nodes)}
    return len(topo.nodes), [(index[a], index[b]) for a, b in topo.edges]


def shortest_hops(count: int, edges: Sequence[tuple[int, int]], source: int) -> list[int]:
    adjacent: list[list[int]] = [[] for _ in range(count)]
    for a, b in edges:
        adjacent[a].append(b)
        adjacent[b].append(a)
    hops = [-1] * count
    hops[source] = 0
    queue = deque([source])
    while queue:
        here = queue.popleft()
        for there in adjacent[here]:
            if hops[there] < 0:
                hops[there] = hops[here] + 1
                queue.append(there)
    return hops


def random_pairs(rng: random.Random, count: int, how_many: int) -> list[tuple[int, int]]:
    everything = [(a, b) for a in range(count) for b in range(count) if a != b]
    return rng.sample(everything, min(how_many, len(everything)))


def _summary(values: Sequence[float | None]) -> dict[str, Any]:
    got = [v for v in values if v is not None]
    return {"count": len(values), "answered": len(got), **quantiles(got)}


def _probe_summary(probes: Sequence[Any], bin_s: float = 2.0) -> dict[str, Any]:
    answered = [p for p in probes if p.rtt_s is not None]
    return {
        "pings": len(probes),
        "answered": len(answered),
        "delivery": len(answered) / len(probes) if probes else None,
        "rtt_ms": {k: v * 1e3 for k, v in quantiles([p.rtt_s for p in answered]).items()},
        "series": [
            {"t": round(t, 3), "delivery": round(d, 4), "pings": n}
            for t, d, n in delivery_series(probes, bin_s)
        ],
        "unanswered": [[round(p.sent_s, 2), p.source, p.target] for p in probes if p.rtt_s is None],
        **_reachable_only(probes),
    }


def _reachable_only(probes: Sequence[Any]) -> dict[str, Any]:
    """Where links come and go: delivery among the pairs a path joined when the ping was sent."""
    if all(p.reachable for p in probes):
        return {}
    joined = [p for p in probes if p.reachable]
    answered = sum(1 for p in joined if p.rtt_s is not None)
    return {
        "reachable_pings": len(joined),
        "reachable_delivery": answered / len(joined) if joined else None,
        "unreachable_answered": sum(1 for p in probes if not p.reachable and p.rtt_s is not None),
    }


def _settle(bed: Testbed, rng: random.Random, settings: Settings) -> float:
    """Wait until sampled pairs answer; the seconds it took."""
    started = time.monotonic()
    pairs = random_pairs(rng, len(bed.nodes), settings.first_pairs)
    first_answers(bed, pairs, started, limit_s=60.0)
    return time.monotonic() - started


def _stretch(bed: Testbed, rng: random.Random, settings: Settings, edges: Sequence[tuple[int, int]]) -> Any:
    if any(n.kind is not Kind.PINEWOOD for n in bed.nodes):
        return None  # the reference has no counter to read path lengths from
    count = len(bed.nodes)
    rows = []
    for source, target, hops in path_lengths(bed, random_pairs(rng, count, settings.stretch_pairs)):
        shortest = shortest_hops(count, edges, source)[target]
        rows.append({"source": source, "target": target, "hops": hops, "shortest": shortest})
    return {
        "pairs": rows,
        "stretch": quantiles([r["hops"] / r["shortest"] for r in rows if r["shortest"] > 0]),
    }


def _rest(bed: Testbed, settings: Settings) -> dict[str, Any]:
    cost = rest_cost(bed, settings.rest_s)
    by_kind: dict[str, Any] = {}
    for kind in Kind:
        members = [n.index for n in bed.nodes if n.kind is kind]
        if not members:
            continue
        own = [cost.node_bytes_per_s[i] for i in members if cost.node_bytes_per_s[i] is not None]
        by_kind[kind.value] = {
            "nodes": len(members),
            "link_bytes_per_s": quantiles([cost.link_bytes_per_s[i] for i in members]),
            "node_bytes_per_s": quantiles([v for v in own if v is not None]) if own else None,
            "cpu_per_s": quantiles([cost.cpu_per_s[i] for i in members]),
            "rss_mib": quantiles([cost.rss_kib[i] / 1024 for i in members]),
        }
    return {"seconds": round(cost.seconds, 2), "by_kind": by_kind}


def _pinewood_counts(bed: Testbed) -> dict[str, dict[str, int]]:
    """The live Pinewood nodes' drops and event counters, summed (since each one's last start)."""
    drops: dict[str, int] = {}
    events: dict[str, int] = {}
    for node in bed.nodes:
        if node.kind is not Kind.PINEWOOD or not node.alive:
            continue
        try:
            status = bed.api(node.index, "GET", "/status")
        except CALL_ERRORS:
            continue
        for total, counts in ((drops, status.get("drops") or {}), (events, status.get("counters") or {})):
            for name, count in counts.items():
                total[name] = total.get(name, 0) + int(count)
    return {"drops": drops, "counters": events}


def _emulator(bed: Testbed) -> dict[str, Any]:
    stats = bed.link_stats()
    return {
        k: stats[k] for k in ("drops", "write_errors", "late_ms_mean", "late_ms_max", "cpu_s", "scheduling")
    }


def _with_prober(
    bed: Testbed, rng: random.Random, settings: Settings, t0: float, reachable: Reachable | None = None
) -> Prober:
    own = random.Random(rng.random())
    s = settings
    return Prober(bed, own, t0, s.probe_pairs, s.probe_every_s, s.probe_timeout_s, reachable).start()


# ---------------------------------------------------------------- scenarios


def run_cold(bed: Testbed, rng: random.Random, settings: Settings, edges: Sequence[tuple[int, int]]) -> Any:
    t0 = time.monotonic()
    for index in range(len(bed.nodes)):
        bed.launch(index)
    for index in range(len(bed.nodes)):
        bed.wait_up(index)
    all_up = time.monotonic() - t0
    marks = log_marks(bed)
    prober = _with_prober(bed, rng, settings, t0)
    pairs = random_pairs(rng, len(bed.nodes), settings.first_pairs)
    first = first_answers(bed, pairs, t0, limit_s=settings.duration_s)
    time.sleep(max(0.0, t0 + settings.duration_s - time.monotonic()))
    probes = prober.stop()
    lost = peerings_lost(bed, marks)
    return {
        "all_up_s": round(all_up, 3),
        "peerings_lost": lost,
        "first_answer_s": _summary(list(first.values())),
        "first_answer_values": sorted(v for v in first.values() if v is not None),
        "probes": _probe_summary(probes),
        "rest": _rest(bed, settings),
        "path": _stretch(bed, rng, settings, edges),
    }


def run_flaps(bed: Testbed, rng: random.Random, settings: Settings, edges: Sequence[tuple[int, int]]) -> Any:
    bed.start_all()
    settled = _settle(bed, rng, settings)
    marks = log_marks(bed)
    t0 = time.monotonic()
    prober = _with_prober(bed, rng, settings, t0)
    flaps = []
    while time.monotonic() - t0 < settings.duration_s:
        a, b = rng.choice(list(edges))
        down = rng.uniform(1.0, 8.0)
        bed.set_up(a, b, False)
        time.sleep(down)
        bed.set_up(a, b, True)
        back = time.monotonic()
        first = first_answers(bed, [(a, b), (b, a)], back, limit_s=20.0)
        flaps.append({"t": round(back - t0, 2), "down_s": round(down, 2), "a": a, "b": b, **_named(first)})
        time.sleep(settings.flap_gap_s)
    probes = prober.stop()
    recoveries = [v for f in flaps for v in (f["first"], f["back"])]
    return {
        "settled_s": round(settled, 2),
        "peerings_lost": peerings_lost(bed, marks),
        "flaps": flaps,
        "recovery_s": _summary(recoveries),
        "recovery_values": sorted(v for v in recoveries if v is not None),
        "probes": _probe_summary(probes),
    }


def _named(first: dict[tuple[int, int], float | None]) -> dict[str, float | None]:
    (_, there), (_, back) = first.items()
    return {"first": there, "back": back}


def run_restarts(
    bed: Testbed, rng: random.Random, settings: Settings, edges: Sequence[tuple[int, int]]
) -> Any:
    bed.start_all()
    settled = _settle(bed, rng, settings)
    marks = log_marks(bed)
    t0 = time.monotonic()
    prober = _with_prober(bed, rng, settings, t0)
    restarts: list[dict[str, Any]] = []
    near: list[float | None] = []
    far_values: list[float | None] = []
    count = len(bed.nodes)
    while time.monotonic() - t0 < settings.duration_s:
        victim = rng.randrange(count)
        started = time.monotonic()
        bed.stop(victim)
        time.sleep(settings.restart_down_s)
        bed.launch(victim)
        up = bed.wait_up(victim)
        neighbours = sorted({b for a, b in edges if a == victim} | {a for a, b in edges if b == victim})
        others = [n for n in range(count) if n != victim and n not in neighbours]
        far = rng.sample(others, min(2, len(others)))
        pairs = [(n, victim) for n in neighbours + far]
        first = first_answers(bed, pairs, up, limit_s=20.0)
        near.extend(first[(n, victim)] for n in neighbours)
        far_values.extend(first[(n, victim)] for n in far)
        restarts.append(
            {
                "t": round(up - t0, 2),
                "node": victim,
                "start_s": round(up - started - settings.restart_down_s, 3),
                "neighbours": [first[(n, victim)] for n in neighbours],
                "others": [first[(n, victim)] for n in far],
            }
        )
        time.sleep(max(0.0, started + settings.restart_every_s - time.monotonic()))
    probes = prober.stop()
    return {
        "settled_s": round(settled, 2),
        "peerings_lost": peerings_lost(bed, marks),
        "restarts_per_min": round(len(restarts) / (settings.duration_s / 60), 2),
        "restarts": restarts,
        "neighbour_first_answer_s": _summary(near),
        "other_first_answer_s": _summary(far_values),
        "recovery_values": sorted(v for v in near if v is not None),
        "probes": _probe_summary(probes),
    }


class Waypoints:
    """Random waypoint: each node walks to a random point at its own speed, then picks another."""

    def __init__(self, count: int, rng: random.Random, area_m: float, speed: tuple[float, float]) -> None:
        self.rng, self.area, self.speed = rng, area_m, speed
        self.position = [(rng.uniform(0, area_m), rng.uniform(0, area_m)) for _ in range(count)]
        self.goal = [self._leg() for _ in range(count)]

    def _leg(self) -> tuple[float, float, float]:
        return (self.rng.uniform(0, self.area), self.rng.uniform(0, self.area), self.rng.uniform(*self.speed))

    def step(self, seconds: float) -> None:
        for i, (x, y) in enumerate(self.position):
            gx, gy, speed = self.goal[i]
            distance = math.hypot(gx - x, gy - y)
            if distance <= speed * seconds:
                self.position[i] = (gx, gy)
                self.goal[i] = self._leg()
            else:
                f = speed * seconds / distance
                self.position[i] = (x + (gx - x) * f, y + (gy - y) * f)

    def in_range(self, radius: float) -> set[tuple[int, int]]:
        p = self.position
        return {
            (a, b)
            for a in range(len(p))
            for b in range(a + 1, len(p))
            if math.hypot(p[a][0] - p[b][0], p[a][1] - p[b][1]) <= radius
        }


def run_mobility(
    bed: Testbed, rng: random.Random, settings: Settings, edges: Sequence[tuple[int, int]]
) -> Any:
    count = len(bed.nodes)
    walk = Waypoints(
        count, random.Random(rng.random()), settings.mobility_area_m, settings.mobility_speed_m_s
    )
    links = walk.in_range(settings.mobility_range_m)
    for a, b in links:
        bed.set_link(a, b, RADIO_SHAPE)
    component = _components(count, links)
    t0 = time.monotonic()
    bed.start_all()
    prober = _with_prober(bed, rng, settings, t0, lambda a, b: component[a] == component[b])
    changes: list[dict[str, Any]] = []
    stop = threading.Event()

    def move() -> None:
        nonlocal links
        tick = time.monotonic()
        while not stop.is_set():
            walk.step(1.0)
            now_links = walk.in_range(settings.mobility_range_m)
            for a, b in now_links - links:
                bed.set_link(a, b, RADIO_SHAPE)
            for a, b in links - now_links:
                bed.set_link(a, b, None)
            component[:] = _components(count, now_links)
            changes.append(
                {
                    "t": round(time.monotonic() - t0, 2),
                    "wall": round(time.time(), 3),
                    "links": len(now_links),
                    "made": len(now_links - links),
                    "broken": len(links - now_links),
                    "broken_pairs": sorted(links - now_links),
                    "connected": len(set(component)) == 1,
                }
            )
            links = now_links
            tick += 1.0
            stop.wait(max(0.0, tick - time.monotonic()))

    mover = threading.Thread(target=move, name="mobility", daemon=True)
    mover.start()
    time.sleep(max(0.0, t0 + settings.duration_s - time.monotonic()))
    stop.set()
    mover.join()
    probes = prober.stop()
    return {
        "link_changes_per_s": round(sum(c["made"] + c["broken"] for c in changes) / max(1, len(changes)), 2),
        "mean_links": round(sum(c["links"] for c in changes) / max(1, len(changes)), 1),
        "connected_share": round(sum(c["connected"] for c in changes) / max(1, len(changes)), 3),
        "probes": _probe_summary(probes),
        "link_changes": changes,
    }


def _components(count: int, links: set[tuple[int, int]]) -> list[int]:
    """For each node, the lowest node it has a path to (its component's name)."""
    names = [-1] * count
    for start in range(count):
        if names[start] < 0:
            for node, hops in enumerate(shortest_hops(count, sorted(links), start)):
                if hops >= 0:
                    names[node] = start
    return names


RUNNERS: dict[str, Callable[[Testbed, random.Random, Settings, Sequence[tuple[int, int]]], Any]] = {
    "cold": run_cold,
    "wan": run_cold,
    "harsh": run_cold,
    "flaps": run_flaps,
    "restarts": run_restarts,
    "mobility": run_mobility,
}


def run(scenario: str, variant: str, settings: Settings, pinewood_args: Sequence[str] = ()) -> dict[str, Any]:
    """One scenario on one variant, on a testbed of its own."""
    # One seed for every network: the same restarts, flaps and ping pairs, in the same order.
    rng = random.Random(f"{settings.seed} {scenario}")
    count, edges = topology(settings.graph, settings.seed)
    kinds = kinds_for(variant, count, random.Random(settings.seed))
    seed = settings.seed

    def shape(a: int, b: int) -> LinkShape:
        if scenario == "harsh":
            return HARSH_SHAPE
        return wan_shape(seed, a, b) if scenario == "wan" else LAN_SHAPE

    mobile = scenario == "mobility"
    bed = Testbed(
        workdir=settings.workdir / f"{scenario}-{variant}",
        kinds=kinds,
        edges=[] if mobile else edges,
        shape=shape,
        discovery=Discovery.LAN if mobile else Discovery.STATIC,
        seed=seed,
        pinewood_args=pinewood_args,
    )
    started = time.monotonic()
    with bed:
        result = RUNNERS[scenario](bed, rng, settings, edges)
        emulator = _emulator(bed)
        result["pinewood_counts"] = _pinewood_counts(bed)
    return {
        "scenario": scenario,
        "variant": variant,
        "nodes": count,
        "kinds": {k.value: kinds.count(k) for k in Kind},
        "graph": "random waypoint" if mobile else settings.graph,
        "edges": 0 if mobile else len(edges),
        "wall_s": round(time.monotonic() - started, 1),
        "emulator": emulator,
        **result,
    }


def with_overrides(settings: Settings, **changes: Any) -> Settings:
    return replace(settings, **{k: v for k, v in changes.items() if v is not None})
