"""Network namespaces for the testbed: made, entered, and removed by name.

Every namespace of a run is named ``pwtb-<owner pid>-<index>``, and the run
writes a marker ``/run/pinewood-testbed/<owner pid>`` holding its process's
start time.  A run that was killed outright leaves its namespaces behind; the
next run removes every ``pwtb-`` namespace whose owner is no longer the process
that made it (the pid gone, or reused by another process), first killing what
still runs inside it.

The testbed reaches a node's admin API, which listens on the node's own
loopback, through a socket made inside the node's namespace: the calling thread
enters the namespace with ``setns`` for the one ``socket()`` call and goes back
at once (a socket stays in the namespace where it was made).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

PREFIX = "pwtb-"
MARKERS = Path("/run/pinewood-testbed")
NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000


class NamespaceError(RuntimeError):
    """Namespaces cannot be made here; the message says why."""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc().setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], check=False, capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise NamespaceError(f"ip {' '.join(args)}: {result.stderr.strip() or result.returncode}")
    return result


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of its stat), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def check_available() -> None:
    """Raise :class:`NamespaceError` unless this process can make namespaces and TAP devices."""
    if os.geteuid() != 0:
        raise NamespaceError("the testbed needs root (network namespaces and TAP devices)")
    if not Path("/dev/net/tun").exists():
        raise NamespaceError("no /dev/net/tun: TAP devices cannot be made")
    probe = f"{PREFIX}probe-{os.getpid()}"
    try:
        ip("netns", "add", probe)
    except (NamespaceError, OSError) as exc:
        raise NamespaceError(f"cannot make a network namespace: {exc}") from None
    ip("netns", "del", probe, check=False)


def pids_in(name: str) -> list[int]:
    result = ip("netns", "pids", name, check=False)
    return [int(word) for word in result.stdout.split() if word.isdigit()]


def kill_all(pids: list[int], grace_s: float = 5.0) -> None:
    """SIGTERM each, then SIGKILL whatever is left after ``grace_s``."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
        time.sleep(0.05)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def remove(name: str) -> None:
    kill_all(pids_in(name), grace_s=2.0)
    ip("netns", "del", name, check=False)


def owned_names() -> list[str]:
    return sorted(p.name for p in NETNS_DIR.glob(f"{PREFIX}*")) if NETNS_DIR.exists() else []


def remove_leftovers() -> list[str]:
    """Remove the namespaces of runs that are gone; the names removed."""
    removed = []
    for name in owned_names():
        parts = name[len(PREFIX) :].split("-")
        owner = int(parts[0]) if parts and parts[0].isdigit() else -1
        marker = MARKERS / str(owner)
        recorded = marker.read_text().strip() if marker.exists() else None
        if owner > 0 and recorded is not None and recorded == start_time(owner):
            continue  # a live run's
        remove(name)
        removed.append(name)
    if MARKERS.exists():
        for marker in MARKERS.iterdir():
            if marker.name.isdigit() and marker.read_text().strip() != start_time(int(marker.name)):
                marker.unlink(missing_ok=True)
    return removed


class Namespaces:
    """The namespaces of one run, removed by :meth:`close`."""

    def __init__(self) -> None:
        self.owner = os.getpid()
        self.names: list[str] = []
        MARKERS.mkdir(parents=True, exist_ok=True)
        (MARKERS / str(self.owner)).write_text(str(start_time(self.owner)))

    def make(self, index: int) -> str:
        name = f"{PREFIX}{self.owner}-{index}"
        ip("netns", "del", name, check=False)
        ip("netns", "add", name)
        self.names.append(name)
        ip("-n", name, "link", "set", "lo", "up")
        return name

    def close(self) -> None:
        for name in self.names:
            remove(name)
        self.names.clear()
        (MARKERS / str(self.owner)).unlink(missing_ok=True)


@contextlib.contextmanager
def entered(name: str) -> Iterator[None]:
    """This thread in namespace ``name`` for the duration (nothing else may block in it)."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(NETNS_DIR / name, os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(target)
        os.close(own)


def connect_in(name: str, address: tuple[str, int], timeout: float) -> socket.socket:
    """A TCP connection made from inside namespace ``name``."""
    with entered(name):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(address)
    except OSError:
        sock.close()
        raise
    return sock


def udp_in(name: str) -> socket.socket:
    with entered(name):
        return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
