"""Bad input over real sockets: malformed frames after a good handshake, and
malformed requests to the admin API.  Each is refused or closed, the daemon
stays up, and its peerings keep their tree and snake.  (Floods, bad handshakes,
slow and stalled peers: ``test_attacks.py``.)"""

from __future__ import annotations

import contextlib
import socket

import pytest

from bench.daemons import DaemonNet
from bench.hostile_peer import closed_within, connect, handshake_as
from router.wire import Identity

HANDSHAKE_TIMEOUT_S = 2.0


@pytest.fixture
def pair(net: DaemonNet) -> DaemonNet:
    net.start(["a", "b"], [("b", "a")], extra=[f"--handshake-timeout={HANDSHAKE_TIMEOUT_S}"])
    net.wait_converged()
    return net


def still_healthy(net: DaemonNet) -> None:
    for daemon in net.daemons.values():
        assert daemon.process is not None and daemon.process.poll() is None, net.log(daemon)
    net.wait_converged(timeout=30)
    net.ping_all_pairs()


@pytest.mark.parametrize(
    "frame",
    [b"nope" + bytes(20), b"pine\x00\x03\x00\x00\x00\x04", b"pine\x00\x03\x00\x00\x00\x0c\x00\x00"],
    ids=["bad-magic", "length-below-header", "truncated-traffic-fields"],
)
def test_bad_frames_after_the_handshake(pair: DaemonNet, frame: bytes) -> None:
    with connect(pair.daemons["a"].port) as sock:
        handshake_as(sock, Identity.generate())
        sock.sendall(frame)
        assert closed_within(sock, 5) is not None
    still_healthy(pair)


def test_malformed_admin_requests(pair: DaemonNet) -> None:
    a = pair.daemons["a"]
    requests = {
        b"POST /peers HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \xb2\r\n\r\n": b" 400 ",
        b"POST /peers HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1e3\r\n\r\n": b" 400 ",
        b"POST /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 70000\r\n\r\n": b" 413 ",
        b"POST /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 30000\r\n\r\n" + b"[" * 30000: b" 400 ",
        b"POST /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        + (b"8000\r\n" + b"[" * 0x8000 + b"\r\n") * 3  # 96 KiB, over the 64 KiB limit
        + b"0\r\n\r\n": b" 413 ",
        b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nX: " + b"y" * 20000 + b"\r\n\r\n": b" 431 ",
        b"GET /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n": b" 404 ",
        b"GET //[/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n": b" 404 ",
        b"DELETE /peers?uri=%5B HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n": b" 400 ",
        b"GET /status HTTP/1.1\r\n\r\n": b" 400 ",  # HTTP/1.1 without Host
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
