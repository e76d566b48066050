"""The Go reference as a real peer: build ``gopeer`` once, run it, drive it.

``tests/interop/gopeer/`` is a small Go program of this project's own that
takes ``github.com/matrix-org/pinecone`` as an ordinary module dependency
(pinned in its ``go.mod``, fetched by the go command from the module proxy) and
runs one reference router per process.  :func:`ensure_gopeer` builds it into
``~/.cache/pinewood/interop`` (or ``$PINEWOOD_INTEROP_CACHE``) under a name
that hashes its sources and the Go version, so an edit rebuilds it and nothing
else does; :class:`GoPeer` starts one, reads the JSON line it prints with the
addresses it bound, and calls its loopback control API.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import select
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

SOURCE_DIR = Path(__file__).resolve().parent / "gopeer"
CACHE_ENV = "PINEWOOD_INTEROP_CACHE"
BUILD_TIMEOUT_S = 900.0


class GoUnavailable(RuntimeError):
    """Go programs cannot be built here; the message says why."""


def cache_dir() -> Path:
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pinewood" / "interop"


def go_command() -> str:
    go = shutil.which("go")
    if go is None:
        raise GoUnavailable("no `go` command on PATH (Go 1.22 or newer builds the reference peer)")
    return go


def go_version(go: str) -> str:
    try:
        result = subprocess.run([go, "version"], capture_output=True, text=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        raise GoUnavailable(f"`go version` failed: {exc}") from None
    return result.stdout.strip()


def build_go_program(source: Path, name: str, modfile: str = "go.mod") -> Path:
    """Build the Go module at ``source`` (with ``modfile`` as its go.mod) once per
    source and Go version.

    Modules come from the module proxy on the first build (the go.sum beside the
    modfile pins them); the build is serialised across test processes with a lock file.
    """
    go = go_command()
    digest = hashlib.sha256(go_version(go).encode() + b"\0" + modfile.encode())
    for path in sorted(source.rglob("*")):
        if path.is_file() and path.suffix in (".go", ".mod", ".sum"):
            digest.update(str(path.relative_to(source)).encode() + b"\0" + path.read_bytes())
    out_dir = cache_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    binary = out_dir / f"{name}-{digest.hexdigest()[:16]}"
    with (out_dir / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.exists():
            return binary
        partial = out_dir / f"{binary.name}.partial"
        try:
            result = subprocess.run(
                [go, "build", "-trimpath", f"-modfile={modfile}", "-o", str(partial), "."],
                cwd=source,
                check=False,
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            raise GoUnavailable(f"building {name} took over {BUILD_TIMEOUT_S:.0f} s") from None
        if result.returncode != 0:
            raise GoUnavailable(f"building {name} failed:\n{result.stderr[-4000:]}")
        partial.rename(binary)
    return binary


GOPEER_BUILDS = {
    "quic-go-v0.37.4": "go.mod",
    "quic-go-v0.45.2": "quicgo-v0.45.2.mod",
}
"""The reference with the quic-go its own go.mod names, and with the one Dendrite
v0.13.8 ships it with (see the comments at the top of each file)."""


def ensure_gopeer(build: str = "quic-go-v0.37.4") -> Path:
    return build_go_program(SOURCE_DIR, f"gopeer-{build}", GOPEER_BUILDS[build])


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
        self, key: str, method: str, path: str, body_size: int = 0, timeout_s: float = 60.0
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
