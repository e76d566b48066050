"""What the testbed measures: overlay pings between pairs, path lengths, and the
cost of a node at rest.

- :class:`Prober` sends overlay pings between random pairs of live nodes on a
  fixed schedule, from a pool of threads, and keeps every result: delivery over
  time is the share of the pings sent in each interval that were answered.
- :func:`first_answers` pings each of a set of pairs every ``every_s`` until it
  is answered once: the time from an event (a start, a restart, a link coming
  back) to the first answer, to within ``every_s``.
- :func:`path_lengths` measures the hops a ping and its answer took, from the
  nodes' own counts of traffic frames forwarded (a node counts a frame it sends
  on towards a peer, its own included): with one ping in flight and no other
  traffic on the overlay, the count it adds up over all nodes is the hops of
  both ways.  Pinewood nodes only (the reference counts
  nothing it could be asked for); a count is kept only when nothing else moved.
- :func:`peerings_lost` counts, from the nodes' logs, the peerings that ended
  since a mark, by reason: on a network where nothing fails, every one is a
  false alarm (a keepalive deadline, a handshake timeout) or a flap.
- :func:`rest_cost` reads, over a quiet window, the bytes each node's interface
  sent (the emulator reads every one of them), the bytes the node says it sent,
  its CPU time and its resident memory.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from bench.testbed.bed import Kind, Testbed

CALL_ERRORS = (OSError, ValueError, KeyError, http.client.HTTPException)


@dataclass(frozen=True, slots=True)
class Probe:
    sent_s: float
    """When it was sent, in seconds since the scenario's start."""
    source: int
    target: int
    rtt_s: float | None
    reachable: bool = True
    """Whether a path joined the pair when it was sent (false only where links come and go)."""


Reachable = Callable[[int, int], bool]


def live(bed: Testbed) -> list[int]:
    return [n.index for n in bed.nodes if n.alive and n.key and n.up_at >= n.started_at]


class Prober:
    """Pings between random pairs of live nodes, ``pairs`` every ``every_s``."""

    def __init__(
        self,
        bed: Testbed,
        rng: random.Random,
        t0: float,
        pairs: int,
        every_s: float,
        timeout_s: float,
        reachable: Reachable | None = None,
    ) -> None:
        self.bed = bed
        self.reachable = reachable
        self.rng = rng
        self.t0 = t0
        self.pairs = pairs
        self.every_s = every_s
        self.timeout_s = timeout_s
        self.probes: list[Probe] = []
        self._stop = threading.Event()
        workers = pairs * (int(timeout_s / every_s) + 2)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe")
        self._thread = threading.Thread(target=self._run, name="prober", daemon=True)
        self._pending: deque[Future[None]] = deque()
        self._lock = threading.Lock()

    def start(self) -> Prober:
        self._thread.start()
        return self

    def stop(self) -> list[Probe]:
        self._stop.set()
        self._thread.join()
        for future in self._pending:
            future.result()
        self._pool.shutdown()
        return sorted(self.probes, key=lambda p: p.sent_s)

    def _run(self) -> None:
        tick = time.monotonic()
        while not self._stop.is_set():
            nodes = live(self.bed)
            if len(nodes) >= 2:
                for _ in range(self.pairs):
                    source, target = self.rng.sample(nodes, 2)
                    self._pending.append(self._pool.submit(self._one, source, target))
            while self._pending and self._pending[0].done():
                self._pending.popleft().result()
            tick += self.every_s
            self._stop.wait(max(0.0, tick - time.monotonic()))

    def _one(self, source: int, target: int) -> None:
        sent = time.monotonic() - self.t0
        reachable = self.reachable is None or self.reachable(source, target)
        bed = self.bed
        try:
            rtt = bed.ping(source, bed.nodes[target].key, self.timeout_s)
        except CALL_ERRORS:
            return  # the source went down while asked: not a ping that was sent
        with self._lock:
            self.probes.append(Probe(sent, source, target, rtt, reachable))


def delivery_series(probes: Sequence[Probe], bin_s: float) -> list[tuple[float, float, int]]:
    """(start of bin, share answered, pings sent) for each bin with pings."""
    bins: dict[int, list[bool]] = {}
    for p in probes:
        bins.setdefault(int(p.sent_s // bin_s), []).append(p.rtt_s is not None)
    return [(k * bin_s, sum(v) / len(v), len(v)) for k, v in sorted(bins.items())]


def first_answers(
    bed: Testbed, pairs: Sequence[tuple[int, int]], since: float, limit_s: float, every_s: float = 0.2
) -> dict[tuple[int, int], float | None]:
    """For each (source, target): seconds from ``since`` (monotonic) until a ping
    from source to target was first answered, or None within ``limit_s``.  Each
    pair is pinged every ``every_s`` while unanswered, pings overlapping."""
    answered: dict[tuple[int, int], float | None] = dict.fromkeys(pairs)
    lock = threading.Lock()
    deadline = since + limit_s

    def one(pair: tuple[int, int]) -> None:
        source, target = pair
        timeout = max(0.2, min(3.0, deadline - time.monotonic()))
        try:
            rtt = bed.ping(source, bed.nodes[target].key, timeout)
        except CALL_ERRORS:
            return
        if rtt is not None:
            at = time.monotonic() - since
            with lock:
                previous = answered[pair]
                answered[pair] = at if previous is None else min(previous, at)

    workers = min(256, len(pairs) * (int(3.0 / every_s) + 2))
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="first") as pool:
        while time.monotonic() < deadline:
            with lock:
                waiting = [p for p, t in answered.items() if t is None]
            if not waiting:
                break
            for pair in waiting:
                pool.submit(one, pair)
            time.sleep(every_s)
    return answered


def _forwarded(bed: Testbed, nodes: Sequence[int]) -> int:
    return sum(int(bed.api(i, "GET", "/status")["traffic"]["forwarded"]) for i in nodes)


def path_lengths(
    bed: Testbed, pairs: Sequence[tuple[int, int]], timeout_s: float = 3.0
) -> list[tuple[int, int, float]]:
    """(source, target, hops each way, averaged over both ways) for the pairs whose
    ping was answered with no other traffic frame forwarded meanwhile.  Every node
    must be a live Pinewood node."""
    nodes = [n.index for n in bed.nodes]
    if any(n.kind is not Kind.PINEWOOD or not n.alive for n in bed.nodes):
        raise ValueError("path lengths are read from Pinewood nodes' counters: all must be Pinewood and live")
    out = []
    for source, target in pairs:
        try:
            before = _forwarded(bed, nodes)
            rtt = bed.ping(source, bed.nodes[target].key, timeout_s)
            after = _forwarded(bed, nodes)
            check = _forwarded(bed, nodes)  # nothing else moved while we read
        except CALL_ERRORS:
            continue
        if rtt is None or check != after:
            continue
        out.append((source, target, (after - before) / 2))
    return out


ADDRESS = re.compile(r"\d+\.\d+\.\d+\.\d+:\d+")
GO_DISCONNECT = re.compile(r"Disconnected from peer \S+ on port \d+(?: due to error: (.*))?")


def log_marks(bed: Testbed) -> list[int]:
    """Where each node's log ends now."""
    return [(n.data_dir / "log").stat().st_size if (n.data_dir / "log").exists() else 0 for n in bed.nodes]


def peerings_lost(bed: Testbed, marks: Sequence[int]) -> dict[str, int]:
    """Peerings that ended since ``marks``, counted by reason over all nodes
    (each loss is seen by both ends), stops of the node itself left out."""
    lost: dict[str, int] = {}
    for node, mark in zip(bed.nodes, marks, strict=True):
        path = node.data_dir / "log"
        if not path.exists():
            continue
        with path.open("rb") as log:
            log.seek(mark)
            lines = log.read().decode(errors="replace").splitlines()
        for line in lines:
            reason = _disconnect_reason(line)
            if reason is not None and reason != "node stopping":
                lost[reason] = lost.get(reason, 0) + 1
    return lost


def _disconnect_reason(line: str) -> str | None:
    if line.startswith("{"):
        try:
            event = json.loads(line)
        except ValueError:
            return None
        if not isinstance(event, dict):
            return None
        if event.get("event") == "peer disconnected":  # the link ended under the node
            return str(event.get("reason", "?"))[:80]
        if event.get("event") == "closing peer":  # the router closed it (a silent peer, bad input)
            return "closed: " + str(event.get("reason", "?"))[:72]
        return None
    match = GO_DISCONNECT.search(line)
    if match is None:
        return None
    # Addresses and ports differ from one peering to the next: the reason is the rest.
    return "go: " + ADDRESS.sub("*", match.group(1) or "closed")[:70]


@dataclass(frozen=True, slots=True)
class RestCost:
    seconds: float
    link_bytes_per_s: list[float]
    """Per node: bytes its interface sent per second (the emulator's count)."""
    node_bytes_per_s: list[float | None]
    """Per node: bytes it says it sent to its peers per second (Pinewood only)."""
    cpu_per_s: list[float]
    """Per node: CPU seconds per second."""
    rss_kib: list[int]


def _node_bytes_out(bed: Testbed, index: int) -> int | None:
    if bed.nodes[index].kind is not Kind.PINEWOOD:
        return None
    return sum(int(p.get("bytes_out") or 0) for p in bed.api(index, "GET", "/peers"))


def rest_cost(bed: Testbed, seconds: float) -> RestCost:
    """What each node costs over ``seconds`` with nothing sent over the overlay."""
    nodes = range(len(bed.nodes))
    link0 = bed.link_stats()["sent_bytes"]
    own0 = [_node_bytes_out(bed, i) for i in nodes]
    cpu0 = [bed.usage(i)[0] for i in nodes]
    started = time.monotonic()
    time.sleep(seconds)
    took = time.monotonic() - started
    link1 = bed.link_stats()["sent_bytes"]
    own1 = [_node_bytes_out(bed, i) for i in nodes]
    usage = [bed.usage(i) for i in nodes]
    return RestCost(
        seconds=took,
        link_bytes_per_s=[(link1[i] - link0[i]) / took for i in nodes],
        node_bytes_per_s=[
            None if a is None or b is None else (b - a) / took for a, b in zip(own0, own1, strict=True)
        ],
        cpu_per_s=[(usage[i][0] - cpu0[i]) / took for i in nodes],
        rss_kib=[u[1] for u in usage],
    )


def quantiles(values: Sequence[float], points: Sequence[float] = (0.5, 0.9, 0.99)) -> dict[str, float]:
    """The given quantiles (nearest rank) and the mean; empty if no values."""
    if not values:
        return {}
    ordered = sorted(values)
    out = {f"p{round(q * 100)}": ordered[min(len(ordered) - 1, int(q * len(ordered)))] for q in points}
    out["mean"] = statistics.fmean(ordered)
    return out
