"""Bad input over real sockets: each bad peer is closed or has its frames dropped,
the daemon stays up, its other peerings keep their tree and snake, and its memory
stays bounded."""

from __future__ import annotations

import contextlib
import os
import socket
import time

import pytest

from router.wire import (
    FULL_WATERMARK,
    Identity,
    PublicKey,
    TrafficFrame,
    build_handshake,
    encode_frame,
    parse_handshake,
)
from tests.integration.daemons import Daemon, DaemonNet

HANDSHAKE_TIMEOUT_S = 2.0


@pytest.fixture
def pair(net: DaemonNet) -> DaemonNet:
    net.start(["a", "b"], [("b", "a")], extra=[f"--handshake-timeout={HANDSHAKE_TIMEOUT_S}"])
    net.wait_converged()
    return net


def connect(daemon: Daemon) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
    return sock


def closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the daemon closed the connection (reading everything it sends), or None."""
    started = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - started < seconds:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic() - started
    return None


def handshake_as(sock: socket.socket, identity: Identity) -> PublicKey:
    sock.sendall(build_handshake(identity))
    data = b""
    while len(data) < 104:
        data += sock.recv(104 - len(data))
    return parse_handshake(data).public_key


def still_healthy(net: DaemonNet) -> None:
    for daemon in net.daemons.values():
        assert daemon.process is not None and daemon.process.poll() is None, net.log(daemon)
    net.wait_converged(timeout=30)
    net.ping_all_pairs()


def test_garbage_instead_of_a_handshake(pair: DaemonNet) -> None:
    with connect(pair.daemons["a"]) as sock:
        sock.sendall(os.urandom(300))
        assert closed_within(sock, 5) is not None
    still_healthy(pair)


def test_wrong_handshake_version(pair: DaemonNet) -> None:
    with connect(pair.daemons["a"]) as sock:
        me = Identity.generate()
        head = bytes((2, 0, 0, 0)) + (0x3B).to_bytes(4, "big") + me.public_key
        sock.sendall(head + me.sign(head))
        assert closed_within(sock, 5) is not None
    still_healthy(pair)


@pytest.mark.parametrize(
    "frame",
    [b"nope" + bytes(20), b"pine\x00\x03\x00\x00\x00\x04", b"pine\x00\x03\x00\x00\x00\x0c\x00\x00"],
    ids=["bad-magic", "length-below-header", "truncated-traffic-fields"],
)
def test_bad_frames_after_the_handshake(pair: DaemonNet, frame: bytes) -> None:
    with connect(pair.daemons["a"]) as sock:
        handshake_as(sock, Identity.generate())
        sock.sendall(frame)
        assert closed_within(sock, 5) is not None
    still_healthy(pair)


def test_slow_loris_is_cut_at_the_handshake_deadline(pair: DaemonNet) -> None:
    with connect(pair.daemons["a"]) as sock:
        sock.sendall(build_handshake(Identity.generate())[:50])  # and never the rest
        took = closed_within(sock, HANDSHAKE_TIMEOUT_S + 5)
        assert took is not None and HANDSHAKE_TIMEOUT_S - 0.5 <= took <= HANDSHAKE_TIMEOUT_S + 2
    still_healthy(pair)


def test_traffic_flood_is_dropped_and_memory_stays_bounded(pair: DaemonNet) -> None:
    a, b = pair.daemons["a"], pair.daemons["b"]
    with connect(a) as sock:
        me = Identity.generate()
        handshake_as(sock, me)
        sock.settimeout(0.001)
        rss_before = a.rss_kib()
        # 1 KiB frames to b through a, and to a key that is nowhere, as fast as a takes them.
        to_b = encode_frame(
            TrafficFrame((), (), PublicKey(bytes.fromhex(b.key)), me.public_key, os.urandom(1024))
        )
        nowhere = encode_frame(
            TrafficFrame((), (), PublicKey(os.urandom(32)), me.public_key, os.urandom(1024), FULL_WATERMARK)
        )
        chunk = (to_b + nowhere) * 64
        sent = 0
        started = time.monotonic()
        while time.monotonic() - started < 4.0:
            with contextlib.suppress(TimeoutError, BlockingIOError):
                sent += sock.send(chunk)
            with contextlib.suppress(TimeoutError, BlockingIOError):
                sock.recv(65536)  # keep reading what a sends us
        rss_after = a.rss_kib()
        print(f"flooded {sent / 1e6:.1f} MB; a's RSS {rss_before} -> {rss_after} KiB")
        assert sent > 1_000_000
        assert rss_after - rss_before < 64 * 1024, "memory grew by more than 64 MiB under a flood"
        status = a.api("GET", "/status")
        assert status["traffic"]["forwarded"] > 0
    still_healthy(pair)
