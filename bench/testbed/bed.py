"""A testbed: real node processes, one per network namespace, on emulated links.

Each node has one interface, ``tb0``, a TAP device held by the link emulator
(:mod:`bench.testbed.emulator`); the emulator decides which nodes hear each
other and how each link bends frames (:mod:`bench.testbed.medium`).  Addresses
are taken from 198.18.0.0/15, the range set aside for benchmarking networks
(RFC 2544), one /16 for all nodes: a node reaches another only where the
emulator has a link between them.  Nothing is routed out of the namespaces.

A node is a Pinewood daemon (``python -m router run``) or the Go reference
(``tests/interop/gopeer``, built by the go command like the interop tests'),
each with a fixed key so that a restart keeps it.  Peers come from static
configuration along the topology's edges (edge ``(a, b)``: a dials b) or, for
Pinewood nodes, from LAN discovery.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bench.go_build import ensure_gopeer
from bench.testbed import netns
from bench.testbed.medium import LinkShape, mac_text

PEER_PORT = 7000
ADMIN_PORT = 7001
INTERFACE = "tb0"
START_TIMEOUT_S = 60.0


class Kind(enum.Enum):
    PINEWOOD = "pinewood"
    GO = "go"


class Discovery(enum.Enum):
    STATIC = "static"
    LAN = "lan"


def address_of(index: int) -> str:
    number = index + 1
    return f"198.18.{number >> 8}.{number & 0xFF}"


def seed_of(run_seed: int, index: int) -> str:
    return hashlib.sha256(f"pinewood-testbed {run_seed} {index}".encode()).hexdigest()


@dataclass
class Node:
    index: int
    kind: Kind
    namespace: str
    seed: str
    peers: list[int]
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None
    key: str = ""
    started_at: float = 0.0
    """time.monotonic() when the process was last started."""
    up_at: float = 0.0
    """time.monotonic() when it last answered its API after a start."""

    @property
    def address(self) -> str:
        return address_of(self.index)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Testbed:
    """Nodes ``0..n-1`` of the given kinds, links along ``edges``, all torn down by :meth:`close`."""

    workdir: Path
    kinds: Sequence[Kind]
    edges: Sequence[tuple[int, int]]
    shape: Callable[[int, int], LinkShape]
    discovery: Discovery = Discovery.STATIC
    seed: int = 1
    pinewood_args: Sequence[str] = ()
    nodes: list[Node] = field(default_factory=list)
    emulator: subprocess.Popen[bytes] | None = None
    _spaces: netns.Namespaces | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _gopeer: Path | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        netns.check_available()
        netns.remove_leftovers()
        if Kind.GO in self.kinds:
            self._gopeer = ensure_gopeer()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._spaces = netns.Namespaces()
        count = len(self.kinds)
        dials: list[list[int]] = [[] for _ in range(count)]
        for a, b in self.edges:
            dials[a].append(b)
        prefix = f"pwtb{os.getpid() % 100000}t"
        with (self.workdir / "emulator.log").open("wb") as emulator_log:
            self.emulator = self._start_emulator(count, prefix, emulator_log)
        ready = self._read_emulator()
        if "ready" not in ready:
            raise netns.NamespaceError(f"the link emulator did not start: {ready}")
        for index, kind in enumerate(self.kinds):
            name = self._spaces.make(index)
            device = f"{prefix}{index}"
            netns.ip("link", "set", device, "netns", name)
            netns.ip("-n", name, "link", "set", device, "name", INTERFACE)
            netns.ip("-n", name, "link", "set", INTERFACE, "address", mac_text(index))
            netns.ip("-n", name, "addr", "add", f"{address_of(index)}/16", "dev", INTERFACE)
            # No duplicate address detection: link-local IPv6 (for LAN beacons) is usable at once.
            dad = f"net.ipv6.conf.{INTERFACE}.accept_dad=0"
            sysctl = ["ip", "netns", "exec", name, "sysctl", "-q", "-w", dad]
            subprocess.run(sysctl, check=False, capture_output=True)
            netns.ip("-n", name, "link", "set", INTERFACE, "up")
            self.nodes.append(
                Node(index, kind, name, seed_of(self.seed, index), dials[index], self.workdir / f"n{index}")
            )
        for a, b in self.edges:
            self.set_link(a, b, self.shape(a, b))

    @staticmethod
    def _start_emulator(count: int, prefix: str, log: IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "bench.testbed.emulator", f"--nodes={count}", f"--prefix={prefix}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
        )

    def close(self) -> None:
        """Stop every node (by PID), the emulator, and remove the namespaces."""
        netns.kill_all([n.process.pid for n in self.nodes if n.alive and n.process is not None])
        for node in self.nodes:
            if node.process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    node.process.wait(timeout=5)
        if self.emulator is not None and self.emulator.poll() is None:
            assert self.emulator.stdin is not None
            with contextlib.suppress(OSError):
                self.emulator.stdin.close()
            try:
                self.emulator.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.emulator.kill()
                self.emulator.wait()
        if self.emulator is not None and self.emulator.stdout is not None:
            self.emulator.stdout.close()
        if self._spaces is not None:
            self._spaces.close()

    def __enter__(self) -> Testbed:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ nodes

    def launch(self, index: int) -> None:
        node = self.nodes[index]
        node.data_dir.mkdir(parents=True, exist_ok=True)
        peers = [f"tcp://{address_of(p)}:{PEER_PORT}" for p in node.peers]
        if self.discovery is Discovery.LAN and node.kind is Kind.PINEWOOD:
            peers = []
        if node.kind is Kind.PINEWOOD:
            command = [
                sys.executable,
                "-m",
                "router",
                "run",
                f"--listen=tcp://{node.address}:{PEER_PORT}",
                f"--admin=127.0.0.1:{ADMIN_PORT}",
                f"--data-dir={node.data_dir}",
                "--log-format=json",
                *(
                    ["--lan-discovery", f"--lan-interfaces={INTERFACE}"]
                    if self.discovery is Discovery.LAN
                    else ["--no-lan-discovery"]
                ),
                *[f"--peer={p}" for p in peers],
                *self.pinewood_args,
            ]
            env = {**os.environ, "PINEWOOD_SEED": node.seed}
        else:
            assert self._gopeer is not None
            command = [
                str(self._gopeer),
                f"-seed={node.seed}",
                f"-listen={node.address}:{PEER_PORT}",
                f"-control=127.0.0.1:{ADMIN_PORT}",
                *[f"-peer={p}" for p in peers],
            ]
            env = dict(os.environ)
        with (node.data_dir / "log").open("ab") as log:
            node.started_at = time.monotonic()
            node.process = subprocess.Popen(
                ["ip", "netns", "exec", node.namespace, *command],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # a Ctrl-C at the terminal reaches the testbed, which stops them
            )

    def wait_up(self, index: int, timeout: float = START_TIMEOUT_S) -> float:
        """Wait until node ``index`` answers its API; the time it did (monotonic)."""
        node = self.nodes[index]
        deadline = time.monotonic() + timeout
        while True:
            if not node.alive:
                raise RuntimeError(f"node {index} exited: {self.log_tail(index)}")
            try:
                node.key = str(self.api(index, "GET", "/status", timeout=1.0)["key"])
                node.up_at = time.monotonic()
                return node.up_at
            except (OSError, ValueError, KeyError, http.client.HTTPException):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"node {index} did not answer within {timeout} s: {self.log_tail(index)}")
            time.sleep(0.02)

    def start_all(self) -> float:
        """Launch every node and wait for all of them; the monotonic time the first was launched."""
        started = time.monotonic()
        for index in range(len(self.nodes)):
            self.launch(index)
        for index in range(len(self.nodes)):
            self.wait_up(index)
        return started

    def stop(self, index: int, sig: int = signal.SIGKILL) -> None:
        node = self.nodes[index]
        if node.process is not None and node.alive:
            node.process.send_signal(sig)
            node.process.wait(timeout=10)

    def log_tail(self, index: int) -> str:
        path = self.nodes[index].data_dir / "log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    # ------------------------------------------------------------ the emulator

    def _read_emulator(self) -> dict[str, Any]:
        assert self.emulator is not None and self.emulator.stdout is not None
        line = self.emulator.stdout.readline()
        if not line:
            raise netns.NamespaceError(
                "the link emulator exited: "
                + (self.workdir / "emulator.log").read_text(errors="replace")[-2000:]
            )
        answer: dict[str, Any] = json.loads(line)
        return answer

    def emulator_call(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.emulator is not None and self.emulator.stdin is not None
        with self._lock:
            self.emulator.stdin.write(json.dumps(command).encode() + b"\n")
            self.emulator.stdin.flush()
            answer = self._read_emulator()
        if "error" in answer:
            raise ValueError(f"emulator: {answer['error']}")
        return answer

    def set_link(self, a: int, b: int, shape: LinkShape | None) -> None:
        raw = None if shape is None else shape.as_dict()
        self.emulator_call({"op": "link", "a": a, "b": b, "shape": raw})

    def set_up(self, a: int, b: int, up: bool) -> None:
        self.emulator_call({"op": "up", "a": a, "b": b, "up": up})

    def link_stats(self) -> dict[str, Any]:
        return self.emulator_call({"op": "stats"})

    # ------------------------------------------------------------ APIs

    def api(self, index: int, method: str, path: str, body: object = None, timeout: float = 5.0) -> Any:
        """Call node ``index``'s admin API (Pinewood) or control API (Go), inside its namespace."""
        node = self.nodes[index]
        sock = netns.connect_in(node.namespace, ("127.0.0.1", ADMIN_PORT), timeout)
        conn = http.client.HTTPConnection("127.0.0.1", ADMIN_PORT, timeout=timeout)
        conn.sock = sock
        try:
            data = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json"} if data is not None else {}
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            raw = response.read()
            if response.status >= 400:
                raise http.client.HTTPException(f"{method} {path}: {response.status} {raw[:200]!r}")
            return json.loads(raw) if raw else None
        finally:
            conn.close()

    def ping(self, index: int, key: str, timeout: float) -> float | None:
        """One overlay ping from node ``index`` to ``key``: the round trip in seconds, or None."""
        node = self.nodes[index]
        if node.kind is Kind.PINEWOOD:
            answer = self.api(index, "POST", "/ping", {"key": key, "timeout": timeout}, timeout=timeout + 5)
            rtt = answer.get("rtt_ms")
        else:
            answer = self.api(
                index,
                "POST",
                "/ping",
                {"key": key, "count": 1, "timeout_ms": int(timeout * 1000)},
                timeout=timeout + 5,
            )
            rtt = answer["rtt_ms"][0] if answer.get("rtt_ms") else None
        return None if rtt is None else float(rtt) / 1000

    def peer_keys(self, index: int) -> list[str]:
        """The keys node ``index`` has a peering with now."""
        if self.nodes[index].kind is Kind.GO:
            return [str(p["key"]) for p in self.api(index, "GET", "/status")["peers"]]
        return [str(p["key"]) for p in self.api(index, "GET", "/peers") if p.get("key")]

    def usage(self, index: int) -> tuple[float, int]:
        """CPU seconds used by node ``index``'s process so far, and its resident set in KiB."""
        node = self.nodes[index]
        assert node.process is not None
        pid = node.process.pid
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        cpu = (int(stat[11]) + int(stat[12])) / ticks
        rss = 0
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
        return cpu, rss
