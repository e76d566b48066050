"""LAN discovery for real: nodes in network namespaces joined by veth pairs find
each other with no configured peers.  Needs root and iproute2; skipped otherwise."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

SUFFIX = f"{os.getpid() % 10000}"
NAMESPACES = [f"pwlan{i}-{SUFFIX}" for i in range(3)]
# ns0:a0 <-> ns1:b1, ns1:b2 <-> ns2:c2
LINKS = [(0, f"pwa{SUFFIX}", 1, f"pwb{SUFFIX}"), (1, f"pwc{SUFFIX}", 2, f"pwd{SUFFIX}")]
ADMIN = "127.0.0.1:65433"


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def can_make_namespaces() -> str | None:
    if shutil.which("ip") is None:
        return "iproute2 ('ip') is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    try:
        ip("netns", "add", f"pwprobe-{SUFFIX}")
        ip("netns", "del", f"pwprobe-{SUFFIX}")
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"cannot create network namespaces here: {exc}"
    return None


def build_lan(ipv4_only: bool) -> Iterator[list[str]]:
    """The namespaces and their veth pairs; with ``ipv4_only``, IPv6 is off on the
    veths and each pair has IPv4 addresses instead, so only IPv4 beacons can work."""
    reason = can_make_namespaces()
    if reason is not None:
        pytest.skip(reason)
    interfaces: list[list[str]] = [[] for _ in NAMESPACES]
    try:
        for ns in NAMESPACES:
            ip("netns", "add", ns)
            ip("-n", ns, "link", "set", "lo", "up")
        for subnet, (left, left_if, right, right_if) in enumerate(LINKS):
            ip("link", "add", left_if, "type", "veth", "peer", "name", right_if)
            for host, (side, name) in enumerate(((left, left_if), (right, right_if)), start=1):
                ns = NAMESPACES[side]
                ip("link", "set", name, "netns", ns)
                if ipv4_only:
                    ip("netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{name}.disable_ipv6=1")
                    ip("-n", ns, "addr", "add", f"10.114.{subnet}.{host}/24", "dev", name)
                ip("-n", ns, "link", "set", name, "up")
                interfaces[side].append(name)
        yield [",".join(names) for names in interfaces]
    finally:
        for ns in NAMESPACES:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False, timeout=30)


@pytest.fixture
def lan() -> Iterator[list[str]]:
    yield from build_lan(ipv4_only=False)


@pytest.fixture
def lan_ipv4() -> Iterator[list[str]]:
    if shutil.which("sysctl") is None:
        pytest.skip("sysctl is not installed")
    yield from build_lan(ipv4_only=True)


def in_ns(ns: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", ns, sys.executable, "-m", "router", *args]


def admin_json(ns: str, command: str) -> Any:
    """What ``pinewood COMMAND --json`` prints for the node in ``ns``; None if it fails."""
    out = subprocess.run(
        in_ns(ns, command, "--json", f"--admin={ADMIN}"),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return json.loads(out.stdout) if out.returncode == 0 else None


def peers_of(ns: str) -> list[dict[str, Any]]:
    return [p for p in admin_json(ns, "peers") or [] if "port" in p]


def status(ns: str) -> dict[str, Any]:
    result: dict[str, Any] = admin_json(ns, "status") or {}
    return result


def start_node(ns: str, interfaces: str, data_dir: Path, log: IO[bytes] | int) -> subprocess.Popen[bytes]:
    """A node in namespace ``ns``, LAN discovery on ``interfaces``, a fresh key."""
    return subprocess.Popen(
        in_ns(
            ns,
            "run",
            "--listen=tcp://127.0.0.1:65432",
            f"--admin={ADMIN}",
            f"--data-dir={data_dir}",
            f"--lan-interfaces={interfaces}",
            "--log-format=json",
        ),
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PINEWOOD_SEED": ""},
    )


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_nodes_find_each_other_on_the_lan(lan: list[str], tmp_path: Path) -> None:
    run_and_expect_discovery(lan, tmp_path)


def test_nodes_find_each_other_by_ipv4_beacons(lan_ipv4: list[str], tmp_path: Path) -> None:
    run_and_expect_discovery(lan_ipv4, tmp_path)


def run_and_expect_discovery(lan: list[str], tmp_path: Path) -> None:
    """Three nodes on the namespaces converge with no configured peers, the middle
    one peered with both others by LAN discovery."""
    procs = []
    try:
        for ns, interfaces in zip(NAMESPACES, lan, strict=True):
            with (tmp_path / f"{ns}.log").open("wb") as log:
                procs.append(start_node(ns, interfaces, tmp_path / ns, log))
        deadline = time.monotonic() + 60
        statuses: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            statuses = [status(ns) for ns in NAMESPACES]
            if all(statuses):
                keys = sorted(s["key"] for s in statuses)
                by_key = {s["key"]: s for s in statuses}
                roots_ok = all(s["root"]["key"] == keys[-1] for s in statuses)
                snake_ok = all(
                    by_key[k]["descending"] == (keys[i - 1] if i else None) for i, k in enumerate(keys)
                )
                if roots_ok and snake_ok:
                    break
            time.sleep(1)
        else:
            logs = {p.name: p.read_text()[-1500:] for p in tmp_path.glob("*.log")}
            raise AssertionError(f"no convergence over the LAN: {statuses} {logs}")
        middle = subprocess.run(
            in_ns(NAMESPACES[1], "peers", "--json", f"--admin={ADMIN}"),
            capture_output=True,
            text=True,
            check=True,
        )
        kinds = {p["link_type"] for p in json.loads(middle.stdout) if "port" in p}
        assert kinds == {"multicast"}
        # One peering per neighbour: had both ends of a veth dialled at once, the
        # one the higher key dialled is closed (the middle node has two neighbours).
        settled = time.monotonic() + 1.0
        while [len(peers_of(ns)) for ns in NAMESPACES] != [1, 2, 1] and time.monotonic() < settled:
            time.sleep(0.1)
        assert [len(peers_of(ns)) for ns in NAMESPACES] == [1, 2, 1]
    finally:
        stop(procs)
