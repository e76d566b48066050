"""A node under attack, and what its good peers notice.

    python -m bench.hostile [--quick] [--seconds S] [--only a,b] [--json]

For each attack of :mod:`bench.attacks` a fresh triangle is started on loopback:
a node T, and two good peers G1 and G2 that reach each other only through T.
While the attack runs against T (in processes of its own), G1 pings G2 ten
times a second through T, a quiet peer of T's notes the longest silence it
hears from T (T must send it a keepalive every 3 s whatever else it is doing),
and T's processor time and memory are sampled.  One row per attack: the rate
the attacker reached, T's CPU (cores), G1-G2 ping loss and p99 round trip,
good peerings dropped, seconds until T closed the attacker, RSS growth.  The
first row, ``none``, is the same measurement with no attack.  ``combined`` runs
several floods at once from different addresses.

``--json`` prints a list of objects, one per row.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.attacks import NAMES
from bench.daemons import Daemon, DaemonNet
from bench.hostile_peer import KEEPALIVE, below, connect, handshake_as

QUICK_SECONDS = 6.0
FULL_SECONDS = 60.0
PING_INTERVAL_S = 0.1
COMBINED = ("valid-bootstraps", "traffic", "deep-coordinates", "forged-bootstrap", "silent-connections")
"""The floods of the ``combined`` row, all at once, each from an address of its own."""
EXPECT_CLOSED = {
    "forged-bootstrap": True,
    "forged-announcement": True,
    "forged-wakeup": True,
    "garbage-handshakes": True,
    "never-reads": True,
    "slowloris": True,
    "valid-bootstraps": False,
    "deep-announcements": False,
    "deep-coordinates": False,
    "traffic": False,
    "path-notices": False,
    "path-confirmations": False,
    "lookahead-claims": False,
}
"""Whether T must close the attacker (rule: bad signatures, bad handshakes, a peer
that takes nothing) or must not (genuine frames, however many); absent: no peering."""
MIN_SECONDS = {"never-reads": 12.0}
"""Attacks that need longer to show: a peer that reads nothing is closed after 5 s
of stalled writes, and only once T's socket buffers have filled."""


@dataclass(frozen=True, slots=True)
class Row:
    attack: str
    seconds: float
    rate: float
    """What the attacker got into T, per second (see ``unit``)."""
    unit: str
    target_cpu: float
    """T's processor time over the attack, in cores."""
    pings: int
    ping_loss: float
    p99_rtt_ms: float | None
    good_peerings_dropped: int
    closed_after_s: float | None
    rss_growth_mb: float
    max_silence_s: float
    """The longest T left a quiet peer without a frame."""
    refused: int = 0
    probes: int = 0
    probes_served: int = 0
    probe_max_s: float = 0.0
    parts: list[dict[str, Any]] = field(default_factory=list)


class Triangle:
    """T with its gateway, and G1 and G2 peered to it, on loopback."""

    def __init__(self, root: Path, extra: Sequence[str] = ()) -> None:
        self.net = DaemonNet(root)
        # Port 0, as for every listener: a port picked beforehand can be handed
        # to the node's own peering listener by the kernel in the meantime.
        self.net.start(["t"], [], extra=["--gateway-listen=127.0.0.1:0", *extra])
        self.gateway = self.net.logged_port(self.net.daemons["t"], "federation proxy listening")
        self.net.start(["g1", "g2"], [("g1", "t"), ("g2", "t")])
        self.net.wait_converged()

    def __getitem__(self, name: str) -> Daemon:
        return self.net.daemons[name]

    def stop(self) -> None:
        self.net.stop_all()


@contextlib.contextmanager
def triangle(extra: Sequence[str] = ()) -> Iterator[Triangle]:
    with tempfile.TemporaryDirectory(prefix="pinewood-hostile-") as root:
        net = Triangle(Path(root), extra)
        try:
            yield net
        finally:
            net.stop()


class QuietPeer:
    """A peer of T that only sends keepalives, and times the gaps in what T sends it."""

    def __init__(self, t: Daemon, root_key: bytes) -> None:
        self.sock = connect(t.port, "127.0.200.1")
        handshake_as(self.sock, below(root_key))
        self.sock.settimeout(0.1)
        self.longest = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last_heard = last_sent = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now - last_sent >= 1.0:
                with contextlib.suppress(OSError):
                    self.sock.sendall(KEEPALIVE)
                last_sent = now
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                data = b""
            now = time.monotonic()
            if not data:
                self.longest = float("inf")  # T closed a good peer
                return
            self.longest = max(self.longest, now - last_heard)
            last_heard = now

    def close(self) -> float:
        self._stop.set()
        self._thread.join()
        self.sock.close()
        return self.longest


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def disconnects(net: DaemonNet, name: str) -> int:
    """Peerings a good node has lost so far, from its log."""
    path = net.daemons[name].data_dir / "log"
    count = 0
    for line in path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            if json.loads(line).get("event") == "peer disconnected":
                count += 1
    return count


def start_attacker(tri: Triangle, name: str, seconds: float, source: str) -> subprocess.Popen[str]:
    t = tri["t"]
    return subprocess.Popen(
        [
            sys.executable, "-m", "bench.attacks", name,
            f"--port={t.port}", f"--admin={t.admin_port}", f"--gateway={tri.gateway}",
            f"--victim={tri['g2'].key}", f"--seconds={seconds}", f"--source={source}",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(tri: Triangle, attack: str, seconds: float) -> Row:
    """Run ``attack`` (a name of :data:`bench.attacks.NAMES`, ``combined`` or
    ``none``) against T of ``tri`` for ``seconds``, and measure."""
    t = tri["t"]
    assert t.process is not None
    status = t.api("GET", "/status")
    quiet = QuietPeer(t, bytes.fromhex(status["root"]["key"]))
    names = list(COMBINED) if attack == "combined" else [] if attack == "none" else [attack]
    dropped_before = disconnects(tri.net, "g1") + disconnects(tri.net, "g2")
    attackers = [start_attacker(tri, name, seconds, f"127.0.{i + 1}.1") for i, name in enumerate(names)]
    try:
        for proc in attackers:  # each makes its frames first, then says it is ready
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.strip() == "ready", f"attacker did not start: {line!r}"
        rss_before = t.rss_kib()
        cpu_before, wall_before = cpu_seconds(t.process.pid), time.monotonic()
        pinger = subprocess.Popen(
            [
                sys.executable, "-m", "router", "ping", tri["g2"].key, "--json",
                f"--count={int(seconds / PING_INTERVAL_S * 0.9)}", f"--interval={PING_INTERVAL_S}",
                "--timeout=2", f"--admin={tri['g1'].admin}",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        rss_peak = rss_before
        while pinger.poll() is None or any(p.poll() is None for p in attackers):
            rss_peak = max(rss_peak, t.rss_kib())
            time.sleep(0.25)
        cpu = (cpu_seconds(t.process.pid) - cpu_before) / (time.monotonic() - wall_before)
        rss_peak = max(rss_peak, t.rss_kib())
        assert pinger.stdout is not None
        with pinger.stdout:
            rtts = [json.loads(line)["rtt_ms"] for line in pinger.stdout.read().splitlines() if line]
        outcomes = []
        for proc in attackers:
            assert proc.stdout is not None
            outcomes.append(json.loads(proc.stdout.read().splitlines()[-1]))
    finally:
        for proc in attackers:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
    silence = quiet.close()
    answered = [r for r in rtts if r is not None]
    first = outcomes[0] if len(outcomes) == 1 else {}
    return Row(
        attack=attack,
        seconds=seconds,
        rate=sum(o["sent"] for o in outcomes) / seconds if len(outcomes) == 1 else 0.0,
        unit=first.get("unit", ""),
        target_cpu=cpu,
        pings=len(rtts),
        ping_loss=1 - len(answered) / len(rtts) if rtts else 1.0,
        p99_rtt_ms=percentile(answered, 0.99),
        good_peerings_dropped=disconnects(tri.net, "g1") + disconnects(tri.net, "g2") - dropped_before,
        closed_after_s=first.get("closed_after_s"),
        rss_growth_mb=(rss_peak - rss_before) / 1024,
        max_silence_s=silence,
        refused=first.get("refused", 0),
        probes=first.get("probes", 0),
        probes_served=first.get("probes_served", 0),
        probe_max_s=first.get("probe_max_s", 0.0),
        parts=[{"attack": n, **o} for n, o in zip(names, outcomes, strict=True)]
        if attack == "combined"
        else [],
    )


def run(attack: str, seconds: float, extra: Sequence[str] = ()) -> Row:
    """One row, on a triangle of its own."""
    with triangle(extra) as tri:
        return measure(tri, attack, max(seconds, MIN_SECONDS.get(attack, 0.0)))


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(rows: list[Row]) -> str:
    head = (
        f"{'attack':22} {'attacker rate':>18} {'T CPU':>6} {'loss':>6} {'p99 ms':>7} "
        f"{'dropped':>7} {'closed s':>8} {'RSS MB':>7} {'silence s':>9}"
    )
    lines = [head]
    for r in rows:
        rate = f"{r.rate:,.0f} {r.unit}/s" if r.unit else "-"
        lines.append(
            f"{r.attack:22} {rate:>18} {r.target_cpu:6.2f} {r.ping_loss:6.1%} {_fmt(r.p99_rtt_ms, '7.1f')} "
            f"{r.good_peerings_dropped:7d} {_fmt(r.closed_after_s, '8.2f')} {r.rss_growth_mb:7.1f} "
            f"{r.max_silence_s:9.2f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hostile", description=__doc__)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SECONDS:.0f} s per attack")
    parser.add_argument("--seconds", type=float, help=f"per attack (default {FULL_SECONDS:.0f})")
    choices = ("none", *NAMES, "combined")
    parser.add_argument("--only", default=",".join(choices), help="attacks to run: " + ", ".join(choices))
    parser.add_argument("--json", action="store_true", help="a JSON list of rows on stdout")
    args = parser.parse_args(argv)
    seconds = args.seconds or (QUICK_SECONDS if args.quick else FULL_SECONDS)
    attacks = [a.strip() for a in args.only.split(",") if a.strip()]
    unknown = set(attacks) - set(choices)
    if unknown:
        parser.error(f"unknown attacks: {', '.join(sorted(unknown))}")
    rows = []
    for attack in attacks:
        print(f"hostile: {attack} for {seconds:.0f} s", file=sys.stderr, flush=True)
        rows.append(run(attack, seconds))
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=1))
    else:
        print(table(rows))
        median = statistics.median(r.target_cpu for r in rows)
        print(f"\nmedian T CPU over the attacks: {median:.2f} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
