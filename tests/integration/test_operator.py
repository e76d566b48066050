"""What an operator does with a running node: add and remove peers, read status and metrics."""

from __future__ import annotations

import json
import signal
import stat
import subprocess
import sys

from prometheus_client.parser import text_string_to_metric_families

from bench.daemons import DaemonNet, free_port, wait_until


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
    assert b.key[:16] in peers.stdout and "wait p99" in peers.stdout
    [towards_b] = a.api("GET", "/peers")
    # The pings went out through the queue: their waits are sampled; the
    # kernel's queues of the peering are read (empty or not, they are numbers).
    assert towards_b["queue_wait_p50_ms"] is not None and towards_b["queue_wait_p99_ms"] >= 0
    assert isinstance(towards_b["kernel_unread_bytes"], int)
    assert isinstance(towards_b["kernel_unsent_bytes"], int)
    # At rest on loopback the path holds little: the send buffer stays where it started.
    assert towards_b["kernel_send_buffer_bytes"] == 65536
    assert towards_b["dropped_late"] == 0
    metrics = a.api("GET", "/metrics")
    samples = [s for family in text_string_to_metric_families(metrics) for s in family.samples]
    assert [s.value for s in samples if s.name == "pinewood_peers"] == [1.0]
    frames_in = [s for s in samples if s.name == "pinewood_peer_frames_in_total"]
    assert [s.labels["key"] for s in frames_in] == [b.key]

    removed = cli("peer", "remove", b.uri, f"--admin={a.admin}")
    assert removed.returncode == 0, removed.stderr
    wait_until(lambda: a.api("GET", "/status")["peers"] == 0, 10, "the removed peer's link closed")
    gone = cli("peer", "remove", b.uri, f"--admin={a.admin}")
    assert gone.returncode == 1 and "is not a configured peer" in gone.stderr, gone.stderr


def test_pinned_key_mismatch_is_refused(net: DaemonNet) -> None:
    net.start(["a", "b"], [])
    a, b = net.daemons["a"], net.daemons["b"]
    wrong = "00" * 32
    refused_add = cli("peer", "add", f"{b.uri}?key={wrong}", f"--admin={a.admin}")
    assert refused_add.returncode == 1 and "expected" in refused_add.stderr, refused_add.stderr
    assert "stays configured" in refused_add.stderr

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


def restart(net: DaemonNet, name: str) -> None:
    daemon = net.daemons[name]
    net.kill(name, signal.SIGTERM)
    net.launch(daemon, daemon.extra_args)
    net.wait_up(daemon)


def static_rows(net: DaemonNet, name: str) -> dict[str, object]:
    """The node's static peers by URI, and where each came from."""
    return {p["uri"]: p.get("static") for p in net.daemons[name].api("GET", "/peers") if p.get("static")}


def test_a_peer_added_is_saved_and_back_after_a_restart_until_removed(net: DaemonNet) -> None:
    net.start(["a", "b", "c"], [])
    a, b, c = net.daemons["a"], net.daemons["b"], net.daemons["c"]
    added = cli("peer", "add", b.uri, f"--admin={a.admin}")
    assert added.returncode == 0, added.stderr
    assert f"peered with {b.key} over tcp" in added.stdout and "saved" in added.stdout
    temporary = cli("peer", "add", c.uri, "--temporary", f"--admin={a.admin}")
    assert temporary.returncode == 0 and "for this run only" in temporary.stdout, temporary.stderr
    saved = json.loads((a.data_dir / "peers.json").read_text())
    assert saved == {"peers": [b.uri]}
    assert stat.S_IMODE((a.data_dir / "peers.json").stat().st_mode) == 0o600

    restart(net, "a")
    # Saved peers are configured before the admin API answers: no waiting needed to see them.
    assert static_rows(net, "a") == {b.uri: "saved"}
    wait_until(
        lambda: any(p.get("key") == b.key for p in a.api("GET", "/peers")), 15, "the saved peer redialled"
    )

    removed = cli("peer", "remove", b.uri, f"--admin={a.admin}")
    assert removed.returncode == 0 and "note:" not in removed.stderr, removed.stderr
    assert json.loads((a.data_dir / "peers.json").read_text()) == {"peers": []}
    restart(net, "a")
    assert static_rows(net, "a") == {}


def test_a_peer_that_cannot_be_reached_is_reported_with_its_reason(net: DaemonNet) -> None:
    net.start(["a"], [])
    a = net.daemons["a"]
    nobody = f"tcp://127.0.0.1:{free_port()}"
    result = cli("peer", "add", nobody, "--wait=10", f"--admin={a.admin}")
    assert result.returncode == 1, result
    assert "refused" in result.stderr.lower() and "stays configured" in result.stderr, result.stderr
    assert "/peers" not in result.stderr  # the node's reason, not the API's path
    as_json = cli("peer", "add", nobody, "--json", f"--admin={a.admin}")
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["peer"]["last_error"], as_json
    other = f"tcp://127.0.0.1:{free_port()}"
    unwaited = cli("peer", "add", other, "--wait=0", f"--admin={a.admin}")
    assert unwaited.returncode == 0 and unwaited.stdout.startswith(f"added {other}"), unwaited


def test_status_peers_and_config_for_a_person(net: DaemonNet) -> None:
    net.start(["a", "b"], [], extra=["--max-peers=40"])
    a, b = net.daemons["a"], net.daemons["b"]
    lonely = cli("peers", f"--admin={a.admin}")
    assert lonely.returncode == 0 and lonely.stdout.startswith("no peers"), lonely.stdout
    assert cli("peer", "add", b.uri, f"--admin={a.admin}").returncode == 0
    net.wait_converged(timeout=30)

    status = cli("status", f"--admin={a.admin}")
    assert status.returncode == 0, status.stderr
    for label in ("version", "uptime", "root", "coordinates", "depth", "parent", "snake", "peers"):
        assert label in status.stdout, label
    assert "1 (1 outbound, 0 inbound)" in status.stdout

    peers = {p["key"]: p for p in a.api("GET", "/peers")}
    row = peers[b.key]
    assert row["direction"] == "outbound" and row["uptime_s"] > 0 and row["static"] == "saved"
    assert row["rtt_ms"] is not None and 0 < row["rtt_ms"] < 1000  # the kernel's TCP estimate
    far = {p["key"]: p for p in b.api("GET", "/peers")}[a.key]
    assert far["direction"] == "inbound" and far["static"] is None

    shown = cli("config", f"--admin={a.admin}")
    assert shown.returncode == 0, shown.stderr
    lines = {line.split()[0]: line for line in shown.stdout.splitlines()}
    assert "40" in lines["max_peers"] and lines["max_peers"].endswith("# flag --max-peers")
    assert lines["hop_limiting"].endswith("# default")
    assert str(a.data_dir) in lines["data_dir"]


def test_ping_by_prefix_and_into_a_closed_pipe(net: DaemonNet) -> None:
    net.start(["a", "b"], [("a", "b")])
    a, b = net.daemons["a"], net.daemons["b"]
    net.wait_converged(timeout=30)
    one = cli("ping", "-c", "1", b.key[:10], f"--admin={a.admin}")
    assert one.returncode == 0 and f"PING {b.key}" in one.stdout, one
    unknown = cli(
        "ping", "-c", "1", "ffffffffff" if not b.key.startswith("ff") else "0000000000", f"--admin={a.admin}"
    )
    assert unknown.returncode == 1 and "give the whole key" in unknown.stderr, unknown
    nonsense = cli("ping", "-c", "1", "not-a-key", f"--admin={a.admin}")
    assert nonsense.returncode == 2 and "is not a node key" in nonsense.stderr, nonsense
    # `| head -1` closes the pipe after the first line: a quiet end, not a traceback.
    piped = subprocess.run(
        [
            "bash",
            "-c",
            f"{sys.executable} -m router ping -i 0.05 -c 20 {b.key} --admin={a.admin} | head -1; "
            "echo status=${PIPESTATUS[0]} >&2",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert piped.stdout.startswith("PING"), piped
    assert "Traceback" not in piped.stderr and "status=141" in piped.stderr, piped.stderr


def test_a_client_without_a_node_says_what_to_do() -> None:
    result = cli("status", f"--admin=127.0.0.1:{free_port()}")
    assert result.returncode == 3, result
    assert "is the node running" in result.stderr and "--admin" in result.stderr
    assert "/status" not in result.stderr and "Traceback" not in result.stderr
