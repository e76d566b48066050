"""A peer that sends frames with bad signatures is closed, counted, logged and held off.

T sits between two good peers, G1 and G2, that reach each other only through
it.  An attacker peers with T and floods it with one kind of signed frame whose
signature fails (bootstraps, tree announcements, wakeup broadcasts), each
passing every cheap check first (T's root, fresh sequences), so that only the
signature check can catch them.  T must close the attacker at once, refuse it
(by key and by address) when it comes back, and keep G1 and G2 pinging through
it all along.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from router.wire import (
    FULL_WATERMARK,
    BootstrapFrame,
    Identity,
    RootAnnouncement,
    TreeAnnouncementFrame,
    WakeupBroadcastFrame,
    encode_frame,
    sign_bootstrap,
    sign_wakeup,
)
from tests.integration.daemons import Daemon, DaemonNet
from tests.integration.test_hostile_peers import closed_within, connect, handshake_as

FLOOD_S = 3.0
RSS_GROWTH_KIB = 20 * 1024
"""The most T's memory may grow by under one attack."""


@pytest.fixture
def triangle(tmp_path: Path) -> Iterator[DaemonNet]:
    net = DaemonNet(tmp_path)
    try:
        net.start(["t"], [])
        net.start(["g1", "g2"], [("g1", "t"), ("g2", "t")])
        net.wait_converged()
        yield net
    finally:
        net.stop_all()


def forged(kind: str, attacker: Identity, root: tuple[bytes, int], n: int) -> bytes:
    """The ``n``-th forged frame of ``kind``: well formed, for T's root, with a fresh
    sequence, and a signature that fails."""
    someone = Identity.generate()
    root_key, root_sequence = root
    if kind == "bootstrap":
        body = sign_bootstrap(someone, 10**12 + n, root_key, root_sequence)
        # Claimed to come from another key than the one that signed it.
        origin = Identity.generate().public_key
        return encode_frame(BootstrapFrame(origin, FULL_WATERMARK, body.encode()))
    if kind == "announcement":
        ann = RootAnnouncement.create(attacker.public_key, 1 + n).with_hop(attacker, 1)
        raw = bytearray(ann.raw)
        raw[-1] ^= 0x01
        return encode_frame(TreeAnnouncementFrame(bytes(raw)))
    wakeup = sign_wakeup(someone, 10**12 + n, root_key, root_sequence)
    return encode_frame(WakeupBroadcastFrame(Identity.generate().public_key, wakeup.encode(), hop_limit=5))


def pinger(net: DaemonNet, source: str, target: str, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "router",
            "ping",
            net.daemons[target].key,
            f"--count={count}",
            "--interval=0.1",
            "--timeout=2",
            f"--admin={net.daemons[source].admin}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def flood_until_closed(
    sock: socket.socket, make: Callable[[int], bytes], seconds: float
) -> tuple[int, float | None]:
    """Send frames, whole, for ``seconds`` or until T closes the connection, reading
    all T sends meanwhile; how many were sent, and when T closed it (None: never)."""
    started = time.monotonic()
    closed = threading.Event()
    closed_at: list[float] = []

    def drain() -> None:
        with contextlib.suppress(OSError):
            while sock.recv(65536):
                pass
        closed_at.append(time.monotonic() - started)
        closed.set()

    sock.settimeout(10.0)  # a send cut short by a timeout would split a frame: never time out
    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    sent = 0
    while time.monotonic() - started < seconds and not closed.is_set():
        try:
            sock.sendall(b"".join(make(sent + i) for i in range(32)))
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += 32
    stopped_early = time.monotonic() - started < seconds
    if closed.wait(0.5 if stopped_early else 0.0):
        return sent, closed_at[0]
    return sent, None


def counters(daemon: Daemon) -> tuple[dict[str, int], dict[str, int]]:
    status = daemon.api("GET", "/status")
    return status["counters"], status["drops"]


@pytest.mark.parametrize("kind", ["bootstrap", "announcement", "wakeup"])
def test_a_peer_sending_forged_frames_is_closed_and_held_off(triangle: DaemonNet, kind: str) -> None:
    t = triangle.daemons["t"]
    status = t.api("GET", "/status")
    root = (bytes.fromhex(status["root"]["key"]), status["root"]["sequence"])
    attacker = Identity.generate()
    rss_before = t.rss_kib()
    ping = pinger(triangle, "g1", "g2", 30)
    with connect(t) as sock:
        handshake_as(sock, attacker)
        sent, closed_after = flood_until_closed(sock, lambda n: forged(kind, attacker, root, n), FLOOD_S)
    assert closed_after is not None, f"attacker not closed after {sent} forged {kind} frames"
    assert closed_after < 1.0, closed_after
    counted, drops = counters(t)
    assert counted["peers held off: bad signature"] == 1
    assert drops["closed: bad signature"] == 1
    log_lines = [json.loads(line) for line in triangle.log(t).splitlines() if line.startswith("{")]
    held = [line for line in log_lines if line.get("event") == "peer held off after a bad signature"]
    assert held and held[0]["key"] == attacker.public_key.hex() and held[0]["seconds"] == 30.0

    # Back at once, with the same key from the same address: refused before any cryptography.
    with connect(t) as sock:
        sock.sendall(b"\x00" * 10)
        assert closed_within(sock, 2) is not None
    assert counters(t)[0]["handshakes refused: address held off"] == 1

    out, _ = ping.communicate(timeout=60)
    assert re.search(r"30 sent, 30 received", out), out
    assert t.rss_kib() - rss_before < RSS_GROWTH_KIB
    # The good peerings were never touched.
    for name in ("g1", "g2"):
        assert triangle.daemons[name].api("GET", "/status")["peers"] == 1
    assert t.api("GET", "/status")["peers"] == 2


def test_a_flood_of_validly_signed_bootstraps_is_held_to_the_peers_budget(triangle: DaemonNet) -> None:
    """Bootstraps from many fresh keys, every one genuine: nothing to close the
    attacker for, but past its budget they are dropped before any signature
    check, and the good peers' traffic goes on."""
    t = triangle.daemons["t"]
    status = t.api("GET", "/status")
    root_key, root_sequence = bytes.fromhex(status["root"]["key"]), status["root"]["sequence"]
    frames = []
    # More distinct bootstraps than the budget's burst and a few seconds of its
    # rate (repeats would be dropped as replays, before the budget).
    for n in range(20000):
        origin = Identity.generate()
        body = sign_bootstrap(origin, 10**12 + n, root_key, root_sequence)
        frames.append(encode_frame(BootstrapFrame(origin.public_key, FULL_WATERMARK, body.encode())))
    attacker = Identity.generate()
    rss_before = t.rss_kib()
    ping = pinger(triangle, "g1", "g2", 30)
    with connect(t) as sock:
        handshake_as(sock, attacker)
        sent, closed_after = flood_until_closed(sock, lambda n: frames[n % len(frames)], 2 * FLOOD_S)
        assert closed_after is None, f"closed after {closed_after} s"
    out, _ = ping.communicate(timeout=60)
    assert re.search(r"30 sent, 30 received", out), out
    drops = counters(t)[1]
    assert drops.get("over budget: bootstrap", 0) > 0, (sent, drops)
    grew = t.rss_kib() - rss_before
    assert grew < RSS_GROWTH_KIB, f"RSS grew by {grew} KiB"
    assert "closed: bad signature" not in drops
    for name in ("g1", "g2"):
        assert triangle.daemons[name].api("GET", "/status")["peers"] == 1
