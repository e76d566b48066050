"""What an operator does with a running node: add and remove peers, read status and metrics."""

from __future__ import annotations

import subprocess
import sys

from bench.daemons import DaemonNet, wait_until


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "router", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_peers_added_and_removed_at_run_time(net: DaemonNet) -> None:
    net.start(["a", "b"], [], extra=["--no-uvloop"])
    a, b = net.daemons["a"], net.daemons["b"]
    assert a.api("GET", "/status")["peers"] == 0
    added = cli("peer", "add", b.uri, f"--admin={a.admin}")
    assert added.returncode == 0, added.stderr
    net.wait_converged(timeout=30)
    net.ping_all_pairs()

    status = cli("status", f"--admin={a.admin}")
    assert status.returncode == 0 and a.key in status.stdout and "peers        1" in status.stdout
    peers = cli("peers", f"--admin={a.admin}")
    assert b.key[:16] in peers.stdout
    metrics = a.api("GET", "/metrics")
    assert "pinewood_peers 1" in metrics
    assert f'key="{b.key}"' in metrics and "pinewood_peer_frames_in_total" in metrics

    removed = cli("peer", "remove", b.uri, f"--admin={a.admin}")
    assert removed.returncode == 0, removed.stderr
    wait_until(lambda: a.api("GET", "/status")["peers"] == 0, 10, "the removed peer's link closed")
    assert cli("peer", "remove", b.uri, f"--admin={a.admin}").returncode == 2  # no longer configured


def test_pinned_key_mismatch_is_refused(net: DaemonNet) -> None:
    net.start(["a", "b"], [])
    a, b = net.daemons["a"], net.daemons["b"]
    wrong = "00" * 32
    assert cli("peer", "add", f"{b.uri}?key={wrong}", f"--admin={a.admin}").returncode == 0

    def refused() -> list[dict[str, object]]:
        pending = [p for p in a.api("GET", "/peers") if not p.get("connected", True)]
        return [p for p in pending if "expected" in str(p.get("last_error", ""))]

    wait_until(refused, 10, "the peer with the wrong pinned key refused")
    assert a.api("GET", "/status")["peers"] == 0
    assert cli("peer", "add", f"{b.uri}?key={b.key}", f"--admin={a.admin}").returncode == 0
    net.wait_converged(timeout=30)


def test_a_static_peer_that_is_ourselves_is_given_up(net: DaemonNet) -> None:
    net.start(["a"], [])
    a = net.daemons["a"]
    a.api("POST", "/peers", {"uri": a.uri})

    def given_up() -> dict[str, object] | None:
        entry: dict[str, object] = next(p for p in a.api("GET", "/peers") if p["uri"] == a.uri)
        return entry if str(entry.get("last_error", "")).startswith("gave up") else None

    entry = wait_until(given_up, 10, "the node gives up dialling itself")
    assert entry["attempts"] == 1
