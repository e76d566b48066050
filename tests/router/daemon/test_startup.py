"""A node loads only what its configuration uses: a plain TCP router starts
without QUIC, TLS certificates, WebSocket, the relay service, the gateway's
proxies or the metrics library, and loads each once it is configured.

Each case runs ``pinewood run`` in a child process until its admin API answers,
then lists the modules that process had loaded."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench.daemons import free_port

LAZY = (
    "aioquic",
    "qh3",
    "prometheus_client",
    "websockets",
    "cryptography.x509",
    "rich",
    "structlog",
    "relay.service",
    "relay.stores.sqlite",
    "relay.inbox",
    "relay.courier",
    "relay.calls",
    "relay.messages",
    "sqlite3",
    "router.gateway.outbound",
    "router.gateway.inbound",
    "router.sessions.endpoint",
    "router.links.tls",
    "http.client",
    "email",
    "importlib.resources",
    "tempfile",
    "statistics",
    "shutil",
    "hashlib",
)
"""Modules that a plain TCP router (no relay, no mailboxes) does without."""

# The child runs the command line's own entry point, and a thread that waits
# for the admin API, writes down sys.modules and stops the node as a signal would.
CHILD = textwrap.dedent(
    """
    import json, os, signal, socket, sys, threading, time
    admin, out = sys.argv[1], sys.argv[2]
    host, port = admin.rsplit(":", 1)

    def answers() -> bool:
        # A bare request: urllib would itself load what the node is checked for.
        with socket.create_connection((host, int(port)), timeout=1) as s:
            s.sendall(f"GET /status HTTP/1.0\\r\\nHost: {admin}\\r\\n\\r\\n".encode())
            return s.recv(16).startswith(b"HTTP/1.1 200")

    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if answers():
                    break
            except OSError:
                pass
            time.sleep(0.02)
        with open(out, "w") as f:
            json.dump(sorted(n for n, m in list(sys.modules.items()) if m is not None), f)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True).start()
    from router.daemon.cli import main
    sys.exit(main(["run", f"--admin={admin}", *sys.argv[3:]]))
    """
)


def loaded_at_start(tmp_path: Path, *args: str) -> set[str]:
    out = tmp_path / "modules.json"
    admin = f"127.0.0.1:{free_port()}"
    run = subprocess.run(
        [sys.executable, "-c", CHILD, admin, str(out), f"--data-dir={tmp_path / 'data'}", *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert out.exists(), f"the node did not answer (exit {run.returncode}): {run.stdout[-2000:]}"
    modules: list[str] = json.loads(out.read_text())
    return set(modules)


def loaded(modules: set[str], name: str) -> bool:
    return name in modules or any(m.startswith(name + ".") for m in modules)


def test_a_plain_tcp_router_loads_none_of_the_optional_parts(tmp_path: Path) -> None:
    modules = loaded_at_start(tmp_path, "--listen=tcp://127.0.0.1:0")
    assert "router.daemon.node" in modules and "router.routing.core" in modules  # it did start
    assert [name for name in LAZY if loaded(modules, name)] == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--listen=quic://127.0.0.1:0", "--quic-engine=aioquic"], ["aioquic"]),
        (["--listen=tls://127.0.0.1:0"], ["router.links.tls", "cryptography.x509"]),
        (["--listen=ws://127.0.0.1:0"], ["websockets"]),
        (["--listen=tcp://127.0.0.1:0", "--relay-enable"], ["relay.service", "router.sessions.endpoint"]),
        (
            ["--listen=tcp://127.0.0.1:0", "--gateway-listen=127.0.0.1:0"],
            ["router.gateway.outbound", "router.sessions.endpoint", "aioquic"],
        ),
    ],
    ids=["quic", "tls", "ws", "relay", "gateway"],
)
def test_each_part_loads_once_configured(tmp_path: Path, args: list[str], expected: list[str]) -> None:
    modules = loaded_at_start(tmp_path, *args)
    assert [name for name in expected if not loaded(modules, name)] == []


def test_a_node_on_asyncios_own_loop_does_not_load_uvloop(tmp_path: Path) -> None:
    assert "uvloop" in loaded_at_start(tmp_path, "--listen=tcp://127.0.0.1:0")
    modules = loaded_at_start(tmp_path / "plain", "--listen=tcp://127.0.0.1:0", "--no-uvloop")
    assert "router.daemon.node" in modules and not loaded(modules, "uvloop")
