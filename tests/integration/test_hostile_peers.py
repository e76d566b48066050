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
    RootAnnouncement,
    TrafficFrame,
    TreeAnnouncementFrame,
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


def test_a_peer_that_stops_reading_is_closed_and_its_feeders_are_not(pair: DaemonNet) -> None:
    """Traffic towards a peer that never reads: the stalled peer is closed by the
    write-stall timeout; the peer sending the traffic keeps its peering."""
    a = pair.daemons["a"]
    with connect(a) as sink, connect(a) as source:
        sink_id, source_id = Identity.generate(), Identity.generate()
        handshake_as(sink, sink_id)
        handshake_as(source, source_id)
        sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        # The sink announces itself so that a can route to its key.
        own = RootAnnouncement.create(sink_id.public_key, 1).with_hop(sink_id, 1)
        sink.sendall(encode_frame(TreeAnnouncementFrame(own.raw)))
        keepalive = bytes.fromhex("70696e6500000000000a")
        frame = encode_frame(TrafficFrame((), (), sink_id.public_key, source_id.public_key, os.urandom(1024)))
        source.settimeout(0.001)
        sink.settimeout(0.001)
        started = time.monotonic()
        sink_closed_at = None
        while time.monotonic() - started < 12:
            with contextlib.suppress(TimeoutError, BlockingIOError):
                source.send(frame * 32)
            with contextlib.suppress(TimeoutError, BlockingIOError):
                source.recv(65536)  # the source reads what it is sent
            if sink_closed_at is None:
                try:
                    sink.send(keepalive)  # the sink talks but never reads
                except OSError:
                    sink_closed_at = time.monotonic() - started
            time.sleep(0.01)
        peers = a.api("GET", "/peers")
        connected = {p.get("key") for p in peers if "port" in p}
        print(f"sink closed after {sink_closed_at} s; connected: {len(connected)}")
        assert source_id.public_key.hex() in connected, "the feeding peer was disconnected"
        assert sink_id.public_key.hex() not in connected, "the stalled peer was kept"
    still_healthy(pair)


def test_malformed_admin_requests(pair: DaemonNet) -> None:
    a = pair.daemons["a"]
    requests = {
        b"POST /peers HTTP/1.1\r\nContent-Length: \xb2\r\n\r\n": b" 413 ",
        b"POST /ping HTTP/1.1\r\nContent-Length: 30000\r\n\r\n" + b"[" * 30000: b" 400 ",
        b"GET /status HTTP/1.1\r\nX: " + b"y" * 20000 + b"\r\n\r\n": b" 431 ",
        b"GET /nowhere HTTP/1.1\r\n\r\n": b" 404 ",
        b"DELETE /peers?uri=%5B HTTP/1.1\r\n\r\n": b" 400 ",
        b"garbage\r\n\r\n": b" 400 ",
    }
    for request, expected in requests.items():
        with socket.create_connection(("127.0.0.1", a.admin_port), timeout=10) as sock:
            with contextlib.suppress(ConnectionError):
                sock.sendall(request)
            answer = b""
            with contextlib.suppress(ConnectionError):
                while chunk := sock.recv(65536):
                    answer += chunk
            assert expected in answer.split(b"\r\n", 1)[0], (request[:40], answer[:100])
    still_healthy(pair)
