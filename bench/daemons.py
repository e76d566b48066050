"""Real ``pinewood run`` processes on loopback, and their admin APIs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_HANDED_OUT: set[int] = set()


def wait_until(check: Callable[..., Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``check()`` until it returns something true, and return that; an
    AssertionError naming ``what`` (and the last answer) after ``timeout`` s.
    While not yet true, ``check`` may also raise OSError or AssertionError."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = check()
            if result:
                return result
            last = result
        except (OSError, AssertionError) as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")
        time.sleep(interval)


def holds_for(check: Callable[[], Any], seconds: float, what: str, interval: float = 0.1) -> None:
    """Poll ``check()`` for ``seconds`` and raise an AssertionError naming
    ``what`` as soon as it is false: the check for something that must not
    happen (a duplicate arriving late, a peering dropping), over a stated period."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if not result:
            raise AssertionError(
                f"{what}: broke after {seconds - (deadline - time.monotonic()):.2f} s ({result!r})"
            )
        if time.monotonic() > deadline:
            return
        time.sleep(interval)


def free_port() -> int:
    """A port free now and never handed out before in this test process (the
    kernel may offer the same free port twice in a row, and two daemons of one
    network would then fight over it)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


@dataclass
class Daemon:
    name: str
    port: int
    admin_port: int
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None
    key: str = ""
    extra_args: list[str] = field(default_factory=list)
    scheme: str = "tcp"
    seed: str = ""
    """Hex ed25519 seed (``PINEWOOD_SEED``); empty: a key file made on first start."""
    log_offset: int = 0
    """Where in its log the daemon's last launch began."""

    @property
    def admin(self) -> str:
        return f"127.0.0.1:{self.admin_port}"

    @property
    def uri(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def api(self, method: str, path: str, body: object = None, timeout: float = 5.0) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"http://{self.admin}{path}", data=data, method=method)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
        return json.loads(raw) if path != "/metrics" else raw.decode()

    def rss_kib(self) -> int:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")


class DaemonNet:
    """A set of daemons on loopback, peered as asked, cleaned up at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.daemons: dict[str, Daemon] = {}

    def start(
        self,
        names: Iterable[str],
        edges: Iterable[tuple[str, str]],
        extra: list[str] | None = None,
        scheme: str = "tcp",
        seeds: dict[str, str] | None = None,
    ) -> None:
        """Start daemons ``names`` (listening on ``scheme``); each edge (a, b) has a dial b.
        ``seeds`` gives some of them a fixed key (hex seeds by name)."""
        seeds = seeds or {}
        new = [
            Daemon(name, 0, 0, self.root / name, scheme=scheme, seed=seeds.get(name, "")) for name in names
        ]
        for daemon in new:
            self.daemons[daemon.name] = daemon
            self.launch(daemon, list(extra or []))
        # Every daemon binds port 0 and says in its log which port it got; the
        # edges are added once everyone's address is known.
        for daemon in new:
            self.wait_up(daemon)
        for a, b in edges:  # for this run only: a restarted daemon redials nobody by itself
            self.daemons[a].api("POST", "/peers", {"uri": self.daemons[b].uri, "save": False})

    def launch(self, daemon: Daemon, args: list[str]) -> None:
        """Start ``daemon``: on port 0 the first time, then again on the ports it
        had (so that peers redialling it find it)."""
        daemon.data_dir.mkdir(parents=True, exist_ok=True)
        daemon.extra_args = list(args)  # a restart launches it with the same arguments
        env = {**os.environ, "PINEWOOD_SEED": daemon.seed}
        log_path = daemon.data_dir / "log"
        daemon.log_offset = log_path.stat().st_size if log_path.exists() else 0
        with log_path.open("ab") as log:
            daemon.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "router",
                    "run",
                    f"--listen={daemon.uri}",
                    f"--admin={daemon.admin}",
                    f"--data-dir={daemon.data_dir}",
                    "--log-format=json",
                    *args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def wait_up(self, daemon: Daemon, timeout: float = 20.0) -> None:
        """Wait until ``daemon`` has logged the addresses it bound and answers its admin API."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert daemon.process is not None and daemon.process.poll() is None, self.log(daemon)
            bound = self._bound(daemon)
            if bound is not None:
                daemon.port, daemon.admin_port = bound
                try:
                    daemon.key = daemon.api("GET", "/status")["key"]
                    return
                except OSError:
                    pass
            time.sleep(0.05)
        raise AssertionError(f"{daemon.name} did not come up: {self.log(daemon)}")

    @staticmethod
    def _bound(daemon: Daemon) -> tuple[int, int] | None:
        """The peering and admin ports ``daemon`` logged since its last launch."""
        with (daemon.data_dir / "log").open("rb") as log:
            log.seek(daemon.log_offset)
            lines = log.read().decode(errors="replace").splitlines()
        port = admin = 0
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # the banner, or a line still being written
            address = str(event.get("address", "")) if isinstance(event, dict) else ""
            if event.get("event") == "listening" and address.startswith(f"{daemon.scheme}://") and not port:
                port = int(address.rpartition(":")[2])
            elif event.get("event") == "admin API listening":
                admin = int(address.rpartition(":")[2])
        return (port, admin) if port and admin else None

    def log(self, daemon: Daemon) -> str:
        path = daemon.data_dir / "log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def alive(self) -> list[Daemon]:
        return [d for d in self.daemons.values() if d.process is not None and d.process.poll() is None]

    def problems(self) -> list[str]:
        """What is still wrong with the tree and snake of the live daemons."""
        live = self.alive()
        statuses = {d.key: d.api("GET", "/status") for d in live}
        keys = sorted(statuses)
        problems = []
        for i, key in enumerate(keys):
            status = statuses[key]
            if status["root"]["key"] != keys[-1]:
                problems.append(f"{key[:8]} has root {status['root']['key'][:8]}")
            want = keys[i - 1] if i else None
            if status["descending"] != want:
                problems.append(f"{key[:8]} descending {str(status['descending'])[:8]}, want {str(want)[:8]}")
            parent = status["parent"]
            if parent is not None:
                parent_coords = statuses[parent["key"]]["coordinates"] if parent["key"] in statuses else None
                if parent_coords != status["coordinates"][:-1]:
                    problems.append(f"{key[:8]} coordinates {status['coordinates']} not under its parent's")
        return problems

    def wait_converged(self, timeout: float = 60.0) -> float:
        started = time.monotonic()
        problems: list[str] = []
        while time.monotonic() - started < timeout:
            problems = self.problems()
            if not problems:
                return time.monotonic() - started
            time.sleep(0.5)
        raise AssertionError(f"not converged after {timeout} s: {problems}")

    def ping_all_pairs(self, attempts: int = 3) -> None:
        """``pinewood ping -c 1`` between every ordered pair of live daemons, run in parallel."""
        live = self.alive()
        todo = [(a, b) for a in live for b in live if a is not b]
        for _ in range(attempts):
            procs = [
                (
                    a,
                    b,
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "router",
                            "ping",
                            b.key,
                            "-c",
                            "1",
                            "-W",
                            "3",
                            f"--admin={a.admin}",
                        ],
                        stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT,
                    ),
                )
                for a, b in todo
            ]
            failed = []
            for a, b, proc in procs:
                out, _ = proc.communicate(timeout=60)
                if proc.returncode != 0:
                    failed.append((a, b, out.decode(errors="replace")))
            if not failed:
                return
            todo = [(a, b) for a, b, _ in failed]
            time.sleep(2)
        raise AssertionError(f"ping failed for {[(a.name, b.name) for a, b, _ in failed]}: {failed[0][2]}")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.daemons[name].process
        assert process is not None
        process.send_signal(sig)
        process.wait(timeout=10)

    def stop_all(self) -> None:
        for daemon in self.daemons.values():
            if daemon.process is not None and daemon.process.poll() is None:
                daemon.process.send_signal(signal.SIGTERM)
        slow = []
        for daemon in self.daemons.values():
            if daemon.process is not None:
                try:
                    daemon.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    slow.append(daemon.name)
                    daemon.process.kill()
                    daemon.process.wait()
        # A node that ignores SIGTERM for 10 s is a bug worth failing for.
        assert not slow, f"did not stop within 10 s of SIGTERM: {slow}"
        # Every line a node logs in JSON mode is JSON, whatever happened, and
        # none carries a traceback: untrusted input never ends in one.
        broken = {name: lines for name, lines in self.non_json_lines().items() if lines}
        assert not broken, f"log lines that are not JSON, or that carry a traceback: {broken}"

    def logged_port(self, daemon: Daemon, event: str) -> int:
        """The port of the address that ``daemon`` logged with ``event`` since its last launch."""
        with (daemon.data_dir / "log").open("rb") as log:
            log.seek(daemon.log_offset)
            lines = log.read().decode(errors="replace").splitlines()
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("event") == event:
                return int(str(entry["address"]).rpartition(":")[2])
        raise AssertionError(f"{daemon.name} logged no {event!r}: {self.log(daemon)}")

    def non_json_lines(self) -> dict[str, list[str]]:
        """By daemon: the lines of its log that are not one JSON object each, or
        that carry a traceback (at most five)."""
        out: dict[str, list[str]] = {}
        for daemon in self.daemons.values():
            path = daemon.data_dir / "log"
            bad: list[str] = []
            if path.exists():
                for line in path.read_text(errors="replace").splitlines():
                    try:
                        event = json.loads(line)
                        if isinstance(event, dict) and "exception" not in event:
                            continue
                    except ValueError:
                        pass
                    bad.append(line[:300])
            out[daemon.name] = bad[:5]
        return out
