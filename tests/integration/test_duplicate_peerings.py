"""Two nodes that dial each other at once keep one peering, the one the lower key dialled.

Real processes on loopback: each round, both nodes are told at the same moment
to peer with the other (as two static peers that list each other are, at
start), so both dial and both handshakes complete; within a second exactly one
peering must be left, on both sides the same connection, and it must stay.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from bench.daemons import Daemon, DaemonNet, wait_until

ROUNDS = 20


def links_to(daemon: Daemon, key: str) -> list[dict[str, Any]]:
    return [p for p in daemon.api("GET", "/peers") if p.get("key") == key]


def duplicates_closed(daemon: Daemon) -> int:
    return int(daemon.api("GET", "/status").get("counters", {}).get("duplicate peerings closed", 0))


def add(go: threading.Barrier, one: Daemon, other: Daemon) -> None:
    """Tell ``one`` to peer with ``other`` once the other thread is ready too."""
    go.wait()
    one.api("POST", "/peers", {"uri": other.uri, "save": False})


def test_static_peers_that_dial_each_other_end_with_one_peering(net: DaemonNet) -> None:
    net.start(["a", "b"], [])
    a, b = net.daemons["a"], net.daemons["b"]
    low, high = (a, b) if a.key < b.key else (b, a)
    raced = 0
    for _ in range(ROUNDS):
        before = duplicates_closed(a) + duplicates_closed(b)
        go = threading.Barrier(2)

        threads = [threading.Thread(target=add, args=(go, *pair)) for pair in ((a, b), (b, a))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        up = time.monotonic()
        wait_until(lambda: links_to(a, b.key) and links_to(b, a.key), 10, "a peering each way")

        def one_each() -> bool:
            return len(links_to(a, b.key)) == 1 and len(links_to(b, a.key)) == 1

        wait_until(one_each, 1.0, "one peering left on each side")
        assert time.monotonic() - up < 2.0
        [kept_low] = links_to(low, high.key)
        [kept_high] = links_to(high, low.key)
        raced += duplicates_closed(a) + duplicates_closed(b) > before
        if duplicates_closed(a) + duplicates_closed(b) > before:
            # The one the lower key dialled stayed, as both sides see it.
            assert not kept_low["inbound"] and kept_high["inbound"]
        time.sleep(0.4)  # it stays: neither side redials the one closed (prompt redials come in 0.05-0.3 s)
        assert [p["port"] for p in links_to(low, high.key)] == [kept_low["port"]]
        assert [p["port"] for p in links_to(high, low.key)] == [kept_high["port"]]
        for one, other in ((a, b), (b, a)):
            one.api("DELETE", f"/peers?uri={other.uri}")
        wait_until(lambda: not links_to(a, b.key) and not links_to(b, a.key), 10, "no peering left")
    # Both dialled at once in at least some rounds (else this tested nothing).
    assert raced >= ROUNDS // 4, f"only {raced} of {ROUNDS} rounds raced"
    print(f"{raced} of {ROUNDS} rounds raced")
    assert not any(net.non_json_lines().values())  # no traceback, nothing but log records
