"""One ``pinewood run`` process on loopback, started from any command (an
installed ``pinewood`` script, or ``python -m router``), known by what its JSON
log says: the key it runs with and the admin port it bound."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.daemons import wait_until

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True, slots=True)
class RunningNode:
    process: subprocess.Popen[bytes]
    key: str
    """The public key (hex) the node logged at start."""
    admin: str
    """host:port of its admin API."""
    log: Path


def log_events(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of a node's log so far (other lines skipped)."""
    events = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a line still being written
        if isinstance(event, dict):
            events.append(event)
    return events


def _started(process: subprocess.Popen[bytes], log: Path) -> tuple[str, str] | None:
    if process.poll() is not None:
        raise RuntimeError(f"the node exited with {process.returncode}: {log.read_text(errors='replace')}")
    events = log_events(log)
    if not any(e.get("event") == "started" for e in events):
        return None
    key = next(str(e["key"]) for e in events if e.get("event") == "pinewood starting")
    address = next(str(e["address"]) for e in events if e.get("event") == "admin API listening")
    return key, address.partition("://")[2].rstrip("/")  # logged as http://host:port


@contextmanager
def running_node(
    command: Sequence[str],
    data_dir: Path,
    *args: str,
    env: dict[str, str] | None = None,
    umask: int = -1,
) -> Iterator[RunningNode]:
    """Run ``command run`` listening on loopback ports the kernel picks, until
    it has logged that it started; stop it (SIGTERM) on leaving, and check that
    it stopped cleanly."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "log"
    argv = [
        *command,
        "run",
        "--listen=tcp://127.0.0.1:0",
        "--admin=127.0.0.1:0",
        f"--data-dir={data_dir}",
        "--log-format=json",
        *args,
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=data_dir, umask=umask
        )
    try:
        key, admin = wait_until(lambda: _started(process, log), START_TIMEOUT_S, "the node's start")
        yield RunningNode(process, key, admin, log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError(
                f"the node did not stop on SIGTERM: {log.read_text(errors='replace')}"
            ) from None
    assert code == 0, f"the node exited with {code}: {log.read_text(errors='replace')}"


def clean_environment() -> dict[str, str]:
    """This process's environment without what would make a child Python find
    the checkout or this virtual environment, and without PINEWOOD_ settings."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("PINEWOOD_")}
