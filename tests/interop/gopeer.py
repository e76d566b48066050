"""The Go reference as a real peer: build ``gopeer`` once, run it, drive it.

``tests/interop/gopeer/`` is a small Go program of this project's own that
takes ``github.com/matrix-org/pinecone`` as an ordinary module dependency
(pinned in its ``go.mod``, fetched by the go command from the module proxy) and
runs one reference router per process.  :func:`ensure_gopeer`
(:mod:`bench.go_build`) builds it once per source and Go version;
:class:`GoPeer` starts one, reads the JSON line it prints with the addresses it
bound, and calls its loopback control API.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bench.go_build import GOPEER_BUILDS, GoUnavailable, ensure_gopeer

__all__ = ["GOPEER_BUILDS", "GoPeer", "GoUnavailable", "ensure_gopeer"]


class GoPeer:
    """One ``gopeer`` process: a Go reference router on loopback.

    ``app`` is what runs above the router: ``packets`` (answers Pinewood's
    pings, counts other packets, sends on request) or ``sessions`` (Pinecone
    sessions with protocol ``matrix``: an HTTP server like the tests' stand-in
    homeserver, and an HTTP client on request).  A restart keeps the key and the
    listen addresses, so peers that dial it find it again.
    """

    def __init__(
        self,
        binary: Path,
        name: str,
        log_dir: Path,
        *,
        seed: str = "",
        app: str = "packets",
        ws: bool = False,
        peers: tuple[str, ...] = (),
    ) -> None:
        self.binary = binary
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.seed = seed or os.urandom(32).hex()
        self.app = app
        self.peers = peers
        self.process: subprocess.Popen[bytes] | None = None
        self.key = ""
        self.tcp = "127.0.0.1:0"
        self.ws = "127.0.0.1:0" if ws else ""
        self.control = ""
        log_dir.mkdir(parents=True, exist_ok=True)

    @property
    def tcp_uri(self) -> str:
        return f"tcp://{self.tcp}"

    @property
    def ws_uri(self) -> str:
        assert self.ws, f"{self.name} has no WebSocket listener"
        return f"ws://{self.ws}/pinecone"

    def start(self, timeout: float = 20.0) -> None:
        args = [str(self.binary), f"-seed={self.seed}", f"-app={self.app}", f"-listen={self.tcp}"]
        if self.ws:
            args.append(f"-listen-ws={self.ws}")
        args += [f"-peer={uri}" for uri in self.peers]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log)
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if ready else b""
        if not line:
            self.stop()
            raise AssertionError(f"gopeer {self.name} did not start: {self.log_tail()}")
        info = json.loads(line)
        self.key, self.tcp, self.control = info["key"], info["tcp"], info["control"]
        self.ws = info.get("ws", "")

    def api(self, method: str, path: str, body: object = None, timeout: float = 10.0) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"http://{self.control}{path}", data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"gopeer {self.name} {method} {path}: {exc.code} {exc.read()!r}") from None

    def status(self) -> dict[str, Any]:
        answer: dict[str, Any] = self.api("GET", "/status")
        return answer

    def ping(self, key: str, count: int = 1, timeout_ms: int = 3000) -> dict[str, Any]:
        answer: dict[str, Any] = self.api(
            "POST",
            "/ping",
            {"key": key, "count": count, "timeout_ms": timeout_ms},
            timeout=count * timeout_ms / 1000 + 10,
        )
        return answer

    def send(self, key: str, count: int, size: int = 100) -> None:
        self.api("POST", "/send", {"key": key, "count": count, "size": size}, timeout=60)

    def received(self) -> dict[str, dict[str, int]]:
        answer: dict[str, dict[str, int]] = self.api("GET", "/received")
        return answer

    def http(
        self,
        key: str,
        method: str,
        path: str,
        body_size: int = 0,
        timeout_s: float = 60.0,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """One HTTP request over a Pinecone session to ``key``; its status, length and SHA-256."""
        answer: dict[str, Any] = self.api(
            "POST",
            "/http",
            {
                "key": key,
                "method": method,
                "path": path,
                "body_size": body_size,
                "timeout_ms": int(timeout_s * 1000),
                "headers": headers or {},
            },
            timeout=timeout_s + 10,
        )
        return answer

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None

    def restart(self) -> None:
        """Kill and start again with the same key and listen addresses."""
        self.stop(signal.SIGKILL)
        self.start()

    def log_tail(self, limit: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-limit:]
        return ""
