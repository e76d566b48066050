"""Go programs of this project's own, built once per source and Go version.

``tests/interop/gopeer/`` is a small Go program that takes
``github.com/matrix-org/pinecone`` as an ordinary module dependency (pinned in
its ``go.mod``, fetched by the go command from the module proxy) and runs one
reference router per process.  :func:`ensure_gopeer` builds it into
``~/.cache/pinewood/interop`` (or ``$PINEWOOD_INTEROP_CACHE``) under a name that
hashes its sources and the Go version, so an edit rebuilds it and nothing else
does.  The interop tests and the testbed both run it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parent.parent / "tests" / "interop" / "gopeer"
"""The Go program's sources (in a checkout of the project)."""
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
