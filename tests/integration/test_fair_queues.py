"""Two floods through one node, in real processes: fair shares, and a ping beside them.

Two generator processes, each its own node key, flood node a with traffic for
node b as fast as a takes it.  What a reads from each, and what it queues for b,
must split evenly; pings from a to b through the same queues must all come
back.  How fast they come back is the benchmark's to measure
(``python -m bench.throughput``), not this test's.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from bench.daemons import DaemonNet, wait_until

FLOOD_S = 6.0


@pytest.fixture
def generators() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        proc.kill()
        proc.wait()


def flood(port: int, key: str, seconds: float) -> subprocess.Popen[bytes]:
    code = f"from bench.throughput import generate; generate({port}, {key!r}, {seconds})"
    return subprocess.Popen([sys.executable, "-c", code])


def test_two_floods_through_one_node_share_it_evenly_and_pings_get_through(
    net: DaemonNet, generators: list[subprocess.Popen[bytes]]
) -> None:
    net.start(["a", "b"], [("b", "a")])
    a, b = net.daemons["a"], net.daemons["b"]
    net.wait_converged(timeout=30)
    generators += [flood(a.port, b.key, FLOOD_S), flood(a.port, b.key, FLOOD_S)]

    def flooding() -> list[dict[str, object]] | None:
        peers = [p for p in a.api("GET", "/peers") if "port" in p and p["key"] != b.key]
        return peers if len(peers) == 2 and all(int(p["frames_in"]) > 10_000 for p in peers) else None

    wait_until(flooding, 20, "both floods arriving at a")
    start = {p["port"]: int(p["frames_in"]) for p in a.api("GET", "/peers") if p.get("key") != b.key}
    answered = sum(
        a.api("POST", "/ping", {"key": b.key, "timeout": 2})["rtt_ms"] is not None for _ in range(20)
    )
    end = {p["port"]: int(p["frames_in"]) for p in a.api("GET", "/peers") if p.get("key") != b.key}
    for proc in generators:
        proc.wait(timeout=30)

    taken = [end[port] - start[port] for port in start if port in end]
    assert len(taken) == 2 and min(taken) > 1000, taken
    share = taken[0] / sum(taken)
    assert 0.4 <= share <= 0.6, f"shares {taken}"
    assert answered == 20
    towards_b = next(p for p in a.api("GET", "/peers") if p.get("key") == b.key)
    assert towards_b["queue_wait_p99_ms"] is not None
    assert not net.problems()
