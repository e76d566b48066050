"""Networks of Go reference routers and Pinewood routers, as real processes.

:class:`MixedNet` starts ``gopeer`` processes and ``pinewood run`` processes on
loopback, peered as asked, and reads every node's tree and snake state through
its own API into one shape (:class:`NodeView`), so that one set of rules checks
them all: one root, coordinates that extend the parent's by the port the
parent gave the child, and every descending neighbour the next lower key.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.daemons import Daemon, DaemonNet, free_port
from router.wire.keys import Identity
from tests.interop.gopeer import GoPeer


@dataclass(frozen=True, slots=True)
class NodeView:
    """One node's tree and snake position, whichever implementation it runs."""

    name: str
    key: str
    root: str | None
    coordinates: tuple[int, ...]
    parent: str | None
    descending: str | None
    peer_ports: dict[int, str]
    """Port on this node -> the key of the peer on that port."""


def key_of(seed: str) -> str:
    return Identity.from_seed(bytes.fromhex(seed)).public_key.hex()


def pinewood_view(daemon: Daemon) -> NodeView:
    status = daemon.api("GET", "/status")
    peers = daemon.api("GET", "/peers")
    return NodeView(
        name=daemon.name,
        key=status["key"],
        root=status["root"]["key"],
        coordinates=tuple(status["coordinates"]),
        parent=status["parent"]["key"] if status["parent"] else None,
        descending=status["descending"],
        peer_ports={p["port"]: p["key"] for p in peers if "port" in p and p["key"]},
    )


def go_view(peer: GoPeer) -> NodeView:
    status = peer.status()
    return NodeView(
        name=peer.name,
        key=status["key"],
        root=status["root"]["key"] if status["root"] else None,
        coordinates=tuple(status["coordinates"]),
        parent=status["parent"],
        descending=status["descending"],
        peer_ports={p["port"]: p["key"] for p in status["peers"]},
    )


def tree_and_snake_problems(views: Iterable[NodeView]) -> list[str]:
    """What is still wrong with the tree and snake of these nodes, taken as the whole network."""
    by_key = {v.key: v for v in views}
    keys = sorted(by_key)
    problems: list[str] = []
    for i, key in enumerate(keys):
        view = by_key[key]
        label = f"{view.name} ({key[:8]})"
        if view.root != keys[-1]:
            problems.append(f"{label} has root {str(view.root)[:8]}, want {keys[-1][:8]}")
        want = keys[i - 1] if i else None
        if view.descending != want:
            problems.append(f"{label} descending {str(view.descending)[:8]}, want {str(want)[:8]}")
        if key == keys[-1]:
            if view.parent is not None or view.coordinates:
                problems.append(f"{label} is the root but has parent {view.parent} and {view.coordinates}")
            continue
        parent = by_key.get(view.parent or "")
        if parent is None:
            problems.append(f"{label} has parent {str(view.parent)[:8]}, not a node of this network")
            continue
        ports = [port for port, peer in parent.peer_ports.items() if peer == key]
        if not any(view.coordinates == (*parent.coordinates, port) for port in ports):
            problems.append(
                f"{label} coordinates {list(view.coordinates)}, want its parent {parent.name}'s "
                f"{list(parent.coordinates)} plus one of the ports it has there {ports}"
            )
    return problems


class MixedNet:
    """Go and Pinewood routers on loopback; stopped together at the end."""

    def __init__(self, root: Path, gopeer: Path) -> None:
        self.root = root
        self.gopeer = gopeer
        self.pinewood = DaemonNet(root / "pinewood")
        self.go: dict[str, GoPeer] = {}
        self.ws_ports: dict[str, int] = {}
        self.order: list[str] = []

    # ------------------------------------------------------------ building

    def plan_pinewood(self, name: str, seed: str = "", ws: bool = False) -> Daemon:
        """Allocate a Pinewood node's addresses without starting it (so Go nodes can dial it)."""
        daemon = Daemon(name, free_port(), free_port(), self.pinewood.root / name, seed=seed)
        self.pinewood.daemons[name] = daemon
        if ws:
            self.ws_ports[name] = free_port()
        self.order.append(name)
        return daemon

    def start_pinewood(self, name: str, peers: Iterable[str] = (), extra: Iterable[str] = ()) -> Daemon:
        daemon = self.pinewood.daemons[name]
        args = [f"--peer={uri}" for uri in peers] + list(extra)
        if name in self.ws_ports:
            args.append(f"--listen=ws://127.0.0.1:{self.ws_ports[name]}")
        daemon.extra_args = args
        self.pinewood.launch(daemon, args)
        self.pinewood.wait_up(daemon)
        return daemon

    def restart_pinewood(self, name: str) -> None:
        daemon = self.pinewood.daemons[name]
        self.pinewood.kill(name)
        self.pinewood.launch(daemon, daemon.extra_args)
        self.pinewood.wait_up(daemon)

    def start_go(
        self, name: str, seed: str = "", app: str = "packets", ws: bool = False, peers: Iterable[str] = ()
    ) -> GoPeer:
        peer = GoPeer(self.gopeer, name, self.root / "go", seed=seed, app=app, ws=ws, peers=tuple(peers))
        self.go[name] = peer
        self.order.append(name)
        peer.start()
        return peer

    def pinewood_uri(self, name: str, scheme: str = "tcp") -> str:
        daemon = self.pinewood.daemons[name]
        if scheme == "ws":
            return f"ws://127.0.0.1:{self.ws_ports[name]}/pinecone"
        return daemon.uri

    def key(self, name: str) -> str:
        if name in self.go:
            return self.go[name].key
        return self.pinewood.daemons[name].key

    # ------------------------------------------------------------ reading

    def views(self) -> list[NodeView]:
        out = []
        for name in self.order:
            if name in self.go:
                out.append(go_view(self.go[name]))
            else:
                out.append(pinewood_view(self.pinewood.daemons[name]))
        return out

    def problems(self) -> list[str]:
        return tree_and_snake_problems(self.views())

    def wait_converged(self, timeout: float) -> float:
        """Seconds until the whole network's tree and snake are right."""
        started = time.monotonic()
        problems: list[str] = []
        while time.monotonic() - started < timeout:
            try:
                problems = self.problems()
            except OSError as exc:  # a node still starting
                problems = [str(exc)]
            if not problems:
                return time.monotonic() - started
            time.sleep(0.2)
        raise AssertionError(f"not converged after {timeout} s: {problems}\n{self.logs()}")

    def pinewood_ping(self, source: str, key: str, count: int = 3) -> subprocess.CompletedProcess[str]:
        """``pinewood ping`` from a Pinewood node, as an operator runs it."""
        daemon = self.pinewood.daemons[source]
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "router",
                "ping",
                key,
                f"--count={count}",
                "--interval=0.2",
                "--timeout=3",
                f"--admin={daemon.admin}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def pinewood_status(self, name: str) -> dict[str, Any]:
        status: dict[str, Any] = self.pinewood.daemons[name].api("GET", "/status")
        return status

    def logs(self) -> str:
        parts = []
        for name in self.order:
            if name in self.go:
                parts.append(f"--- go {name}\n{self.go[name].log_tail(1500)}")
            else:
                parts.append(f"--- pinewood {name}\n{self.pinewood.log(self.pinewood.daemons[name])[-1500:]}")
        return "\n".join(parts)

    def stop_all(self) -> None:
        for peer in self.go.values():
            peer.stop()
        self.pinewood.stop_all()
