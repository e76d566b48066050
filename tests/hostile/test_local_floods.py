"""A local flood of the admin API, and WebSocket upgrades off the path.

Any local process can open connections to the admin API and send nothing.  The
oldest idle ones must make way, so that the operator's CLI is served at once,
however many are held.  (The gateway under the same flood: ``test_attacks.py``.)
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.daemons import Daemon, DaemonNet, free_port


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[DaemonNet, Daemon, int, int]]:
    net = DaemonNet(tmp_path)
    proxy, ws = free_port(), free_port()
    try:
        net.start(
            ["a"],
            [],
            extra=[f"--gateway-listen=127.0.0.1:{proxy}", f"--listen=ws://127.0.0.1:{ws}/pinecone"],
        )
        yield net, net.daemons["a"], proxy, ws
    finally:
        net.stop_all()


@contextlib.contextmanager
def idle_connections(port: int, count: int) -> Iterator[list[socket.socket]]:
    held = []
    try:
        for _ in range(count):
            held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        yield held
    finally:
        for sock in held:
            sock.close()


def test_idle_connections_to_the_admin_api_do_not_stop_the_cli(
    node: tuple[DaemonNet, Daemon, int, int],
) -> None:
    _, a, _, _ = node
    with idle_connections(a.admin_port, 200):
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "router", "status", f"--admin={a.admin}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert a.key in result.stdout
        assert time.monotonic() - started < 5


def upgrade(port: int, path: str) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        return int(sock.recv(65536).split()[1])


def test_websocket_upgrades_only_on_the_listeners_path(node: tuple[DaemonNet, Daemon, int, int]) -> None:
    net, a, _, ws = node
    assert upgrade(ws, "/other") == 404
    assert upgrade(ws, "/") == 404
    assert upgrade(ws, "/pinecone") == 101
    assert a.api("GET", "/status")["counters"]["websocket upgrades refused: wrong path"] == 2
    # And a peer dialling the path peers.
    net.start(["b"], [], extra=[f"--peer=ws://127.0.0.1:{ws}/pinecone"])
    net.wait_converged(timeout=30)
