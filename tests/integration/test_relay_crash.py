"""Crash safety: a relay killed with SIGKILL while deposits stream in loses none it acknowledged.

A real relay process (``pinewood run --relay-enable``) takes deposits from a
client node in another process (``bench.relay load``, 10,000 deposits, 32 at a
time, each acknowledged id printed as its answer arrives).  The relay is killed
with SIGKILL part way through, started again on the same store, and the
mailbox is fetched and acknowledged (``bench.relay fetch``): every acknowledged
deposit is there, each exactly once, and a second fetch finds nothing.  Run
against both store backends.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bench.daemons import DaemonNet
from bench.postgres import postgres_url


def run_tool(command: str, peer: str, relay: str, state: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.relay",
            command,
            f"--peer={peer}",
            f"--relay={relay}",
            f"--state={state}",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def fetch_ids(peer: str, relay: str, state: Path) -> list[str]:
    proc = run_tool("fetch", peer, relay, state)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0 and out.rstrip().endswith("DONE"), out[-2000:]
    return [line.split()[1] for line in out.splitlines() if line.startswith("ID ")]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sigkill_loses_no_acknowledged_deposit(backend: str, tmp_path: Path) -> None:
    store = (
        f"sqlite:///{tmp_path / 'relay-store.db'}"
        if backend == "sqlite"
        else postgres_url(f"crash{tmp_path.name}")
    )
    net = DaemonNet(tmp_path)
    args = ["--relay-enable", f"--relay-store={store}"]
    try:
        net.start(["r"], [], extra=args)
        relay = net.daemons["r"]
        state = tmp_path / "mailbox.json"
        loader = run_tool("load", relay.uri, relay.key, state, "--count=10000", "--concurrency=32")
        assert loader.stdout is not None
        acked: list[str] = []
        for line in loader.stdout:
            if line.startswith("ACK "):
                acked.append(line.split()[1])
                if len(acked) == 2000:
                    net.kill("r", signal.SIGKILL)
        loader.wait(timeout=60)
        loader.stdout.close()
        assert 2000 <= len(acked) < 10_000, "the relay was killed part way through"

        net.launch(relay, args)
        net.wait_up(relay)
        fetched = fetch_ids(relay.uri, relay.key, state)
        assert len(fetched) == len(set(fetched)), "an envelope was delivered twice"
        assert set(acked) <= set(fetched), f"{len(set(acked) - set(fetched))} acknowledged deposits lost"
        # Anything beyond what was acknowledged was committed just before the kill.
        assert len(fetched) - len(acked) <= 64
        assert fetch_ids(relay.uri, relay.key, state) == []
    finally:
        net.stop_all()
