"""Matrix federation across the testbed: two Synapses, through Pinewood and directly.

``python -m bench.testbed.federation --json PATH``, from the repository root (it
uses the Synapse harness of ``tests.e2e``).  Two runs, each on a testbed of its own:

- **pinewood**: five Pinewood nodes in a line, n0 - n1 - n2 - n3 - n4, static
  peers along it, every link :data:`PATH_SHAPE` each way.  Synapse A runs in
  n0's namespace and Synapse B in n4's, each on its namespace's loopback, named
  after its node's key: its outbound federation goes through its node's gateway
  (``https_proxy``, trusting that gateway's CA), inbound federation comes from
  it.  Measured twice on the same pair: undisturbed, then with the transit node
  n2 killed (SIGKILL) midway and started again, same key, after a pause.
- **direct**: the floor.  The same two Synapses on the two ends of one link with
  the path's whole delay and loss (:data:`DIRECT_SHAPE`), federating over HTTPS
  with no node between them: server names ``hsa.test:8448`` and
  ``hsb.test:8448`` (explicit ports, so no well-known or SRV look-up), resolved
  by ``/etc/netns/<namespace>/hosts`` (``ip netns exec`` mounts it over
  ``/etc/hosts``), TLS listeners with certificates from a CA made for the run,
  ``federation_custom_ca_list`` naming it, and an empty IP blocklist (Synapse's
  default one holds 198.18.0.0/15).  Its testbed nodes are never launched.

In each, a user on A makes a room and invites one on B, who joins over
federation; after a few warm-up messages A sends the measured ones one at a
time, each after a pause drawn uniformly from ``gap_s``.  A message's delay runs
from the moment A's send call returned to the moment B's client had it:

- ``delay_ms``: a thread on B holds a ``/sync`` long-poll open at all times
  (one keep-alive connection, a filter down to the room's timeline) and reads
  ``time.monotonic()`` as each answer's body is in.  Synapse answers a waiting
  long-poll as soon as the event is persisted, so this is what a client sees;
- ``stored_delay_ms``: Synapse B's own record of when it persisted the event
  (``events.received_ts``, in ms, read from its database after the run) less
  the wall-clock time the send call returned.  Both servers share this
  machine's clock; the difference of the two series (``sync_overhead_ms``)
  bounds what the long-poll adds to the first.

The Synapses run inside the nodes' namespaces, their client APIs reached from
here through port forwarders (:mod:`bench.testbed.homeservers`).  Everything
is stopped on exit, Ctrl-C or SIGTERM: Synapses by PID, the testbeds through
their own cleanup, the hosts files removed.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import random
import shutil
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.testbed import netns
from bench.testbed.bed import Kind, Testbed, address_of
from bench.testbed.homeservers import (
    LineBed,
    NamespacedSynapse,
    SyncWatcher,
    hosts_files,
    make_certificates,
    remove_stale_hosts,
    stored_at,
)
from bench.testbed.medium import LinkShape
from bench.testbed.probes import quantiles
from tests.e2e.client import MatrixClient
from tests.e2e.synapse import SYNAPSE_VERSION, ensure_synapse

HOP_LOSS = 0.01
HOPS = 4
PATH_SHAPE = LinkShape(delay_s=0.05, loss=HOP_LOSS, rate_bps=10e6, queue_s=0.1)
DIRECT_SHAPE = LinkShape(delay_s=0.05 * HOPS, loss=1 - (1 - HOP_LOSS) ** HOPS, rate_bps=10e6, queue_s=0.1)
CLIENT_PORT = 8008
FEDERATION_PORT = 8009
"""Synapse's plain-HTTP federation listener, where its node's gateway sends inbound federation."""
GATEWAY_PORT = 7100
TLS_PORT = 8448
TRANSIT = 2


@dataclass(frozen=True)
class Settings:
    messages: int = 100
    warmup: int = 3
    gap_s: tuple[float, float] = (1.0, 2.0)
    drain_s: float = 120.0
    """How long to wait for stragglers after the last message was sent."""
    restart_down_s: float = 2.0
    seed: int = 1
    runs: tuple[str, ...] = ("pinewood", "direct")
    workdir: Path = Path("/tmp/pinewood-federation")


# ---------------------------------------------------------------- one measured series


@dataclass
class Sent:
    body: str
    event_id: str
    at: float
    """time.monotonic() when the send call returned."""
    wall: float
    """time.time() then."""


def _room(alice: MatrixClient, bob: MatrixClient, via: str) -> tuple[str, float]:
    """A room of Alice's that Bob joined over federation; the seconds it took."""
    started = time.monotonic()
    room = alice.create_room(name="federation across the testbed")
    alice.invite(room, bob.user_id)
    bob.wait_for_invite(room, timeout=180)
    bob.join(room, via=[via])
    return room, time.monotonic() - started


def _warm(alice: MatrixClient, watcher: SyncWatcher, room: str, count: int) -> None:
    bodies = [f"warm-up {i} {random.getrandbits(32):08x}" for i in range(count)]
    for body in bodies:
        alice.send_text(room, body)
    if not watcher.wait_for(bodies, time.monotonic() + 180):
        raise RuntimeError("the warm-up messages did not reach B within 180 s")


class Restart:
    """Kills node ``index`` at ``at`` (monotonic) and starts it again ``down_s`` later."""

    def __init__(self, bed: Testbed, index: int, at: float, down_s: float) -> None:
        self.bed, self.index, self.at, self.down_s = bed, index, at, down_s
        self.killed = self.launched = self.up = 0.0
        self.error: str | None = None
        self._cancelled = threading.Event()
        self._thread = threading.Thread(target=self._run, name="restart", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            if self._cancelled.wait(max(0.0, self.at - time.monotonic())):
                return
            self.killed = time.monotonic()
            self.bed.stop(self.index, signal.SIGKILL)
            if self._cancelled.wait(self.down_s):
                return
            self.launched = time.monotonic()
            self.bed.launch(self.index)
            self.up = self.bed.wait_up(self.index)
        except Exception as exc:  # reported in the results, the series goes on
            self.error = repr(exc)

    def join(self) -> None:
        self._thread.join()

    def cancel(self) -> None:
        """Nothing more is started (the testbed is about to be torn down)."""
        self._cancelled.set()
        self._thread.join(timeout=5)


def measure(
    settings: Settings,
    label: str,
    alice: MatrixClient,
    watcher: SyncWatcher,
    room: str,
    database: Path,
    restart: tuple[Testbed, int] | None = None,
) -> dict[str, Any]:
    """Send ``settings.messages`` messages from A one at a time; when each reached B."""
    rng = random.Random(f"{settings.seed} {label}")
    gaps = [rng.uniform(*settings.gap_s) for _ in range(settings.messages)]
    offsets = [0.0, *itertools.accumulate(gaps)]  # message i is sent at t0 + offsets[i]
    t0 = time.monotonic()
    killer = None
    if restart is not None:  # halfway between the two middle messages
        half = settings.messages // 2
        midway = t0 + (offsets[half - 1] + offsets[half]) / 2
        killer = Restart(restart[0], restart[1], midway, settings.restart_down_s)
    sent: list[Sent] = []
    try:
        for index in range(settings.messages):
            time.sleep(max(0.0, t0 + offsets[index] - time.monotonic()))
            body = f"{label} {index:03d} {rng.getrandbits(32):08x}"
            event_id = alice.send_text(room, body)
            sent.append(Sent(body, event_id, time.monotonic(), time.time()))
            print(f"  {label}: sent {index + 1}/{settings.messages}", end="\r", flush=True)
        watcher.wait_for([s.body for s in sent], time.monotonic() + settings.drain_s)
        if killer is not None:
            killer.join()
    except BaseException:
        if killer is not None:
            killer.cancel()
        raise
    stored = stored_at(database, [s.event_id for s in sent])
    delays = [
        round((watcher.arrived[s.body] - s.at) * 1e3, 1) if s.body in watcher.arrived else None for s in sent
    ]
    stored_delays = [
        round((stored[s.event_id] - s.wall) * 1e3, 1) if s.event_id in stored else None for s in sent
    ]
    got = [d for d in delays if d is not None]
    result: dict[str, Any] = {
        "label": label,
        "messages": len(sent),
        "arrived": len(got),
        "stored": sum(1 for d in stored_delays if d is not None),
        "delay_ms": _figures(got),
        "stored_delay_ms": _figures([d for d in stored_delays if d is not None]),
        "sync_overhead_ms": _figures(
            [a - b for a, b in zip(delays, stored_delays, strict=True) if a is not None and b is not None]
        ),
        "sent_s": [round(s.at - t0, 3) for s in sent],
        "delays_ms": delays,
        "stored_delays_ms": stored_delays,
        "sync_errors": watcher.errors,
    }
    worst = max(range(len(sent)), key=lambda i: _or_inf(delays[i]))
    result["worst"] = {"index": worst, "delay_ms": delays[worst], "sent_s": result["sent_s"][worst]}
    if killer is not None:
        result["restart"] = {
            "node": killer.index,
            "killed_s": round(killer.killed - t0, 3),
            "launched_s": round(killer.launched - t0, 3),
            "up_s": round(killer.up - t0, 3),
            "error": killer.error,
        }
        result["worst"]["sent_after_kill_s"] = round(sent[worst].at - killer.killed, 3)
    print(f"\n  {label}: {describe(result)}", flush=True)
    return result


def _or_inf(value: float | None) -> float:
    return float("inf") if value is None else value


def _figures(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {}
    out = {k: round(v, 1) for k, v in quantiles(values).items()}
    out["max"] = round(max(values), 1)
    return out


def describe(row: Mapping[str, Any]) -> str:
    d = row["delay_ms"]
    figures = ", ".join(f"{k} {d[k]:.0f}" for k in ("p50", "p90", "p99", "max") if k in d)
    return f"{row['arrived']}/{row['messages']} arrived; delay ms: {figures}"


# ---------------------------------------------------------------- the two runs


def _emulator(bed: Testbed) -> dict[str, Any]:
    stats = bed.link_stats()
    return {k: stats.get(k) for k in ("drops", "write_errors", "late_ms_mean", "late_ms_max")}


def _wait_route(bed: Testbed, source: int, target: int, timeout: float = 90.0) -> float:
    started = time.monotonic()
    key = bed.nodes[target].key
    while time.monotonic() - started < timeout:
        with contextlib.suppress(OSError, ValueError, http.client.HTTPException):
            if bed.ping(source, key, timeout=2.0) is not None:
                return time.monotonic() - started
        time.sleep(0.2)
    raise RuntimeError(f"node {source} never reached node {target} over the overlay within {timeout} s")


def run_pinewood(settings: Settings, python: Path) -> dict[str, Any]:
    gateway = [
        f"--gateway-listen=127.0.0.1:{GATEWAY_PORT}",
        f"--homeserver=http://127.0.0.1:{FEDERATION_PORT}",
    ]
    ends = (0, HOPS)
    bed = LineBed(
        workdir=settings.workdir / "pinewood",
        kinds=[Kind.PINEWOOD] * (HOPS + 1),
        edges=[(i, i + 1) for i in range(HOPS)],
        shape=lambda a, b: PATH_SHAPE,
        seed=settings.seed,
        node_args={i: gateway for i in ends},
    )
    with bed, contextlib.ExitStack() as stack:
        bed.start_all()
        routed = _wait_route(bed, 0, HOPS)
        servers = {}
        for side, index in zip("ab", ends, strict=True):
            info = bed.api(index, "GET", "/gateway")
            servers[side] = stack.enter_context(
                NamespacedSynapse(
                    bed.nodes[index].namespace,
                    python,
                    str(info["server_name"]),
                    settings.workdir / "pinewood" / f"synapse-{side}",
                    federation_port=FEDERATION_PORT,
                    client_port=CLIENT_PORT,
                    proxy_url=f"http://127.0.0.1:{GATEWAY_PORT}",
                    ca_pem=Path(info["ca_certificate"]),
                )
            )
        rows = _federate(settings, "pinewood", servers["a"], servers["b"], restart=(bed, TRANSIT))
        emulator = _emulator(bed)
    return {
        "run": "pinewood",
        "path": f"{HOPS} links, n0 - ... - n{HOPS}, Synapse A beside n0 and B beside n{HOPS}",
        "link": asdict(PATH_SHAPE),
        "overlay_route_s": round(routed, 2),
        "emulator": emulator,
        **rows,
    }


def run_direct(settings: Settings, python: Path) -> dict[str, Any]:
    hosts = {"hsa.test": address_of(0), "hsb.test": address_of(1)}
    workdir = settings.workdir / "direct"
    bed = Testbed(
        workdir=workdir,
        kinds=[Kind.PINEWOOD, Kind.PINEWOOD],  # never launched: the namespaces and the link only
        edges=[(0, 1)],
        shape=lambda a, b: DIRECT_SHAPE,
        seed=settings.seed,
    )
    ca = make_certificates(workdir / "tls", list(hosts))
    with bed, hosts_files([n.namespace for n in bed.nodes], hosts), contextlib.ExitStack() as stack:
        servers = {}
        for index, (side, host) in enumerate(zip("ab", hosts, strict=True)):
            listeners = [
                {
                    "port": CLIENT_PORT,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [{"names": ["client"], "compress": False}],
                },
                {
                    "port": TLS_PORT,
                    "bind_addresses": [address_of(index)],
                    "type": "http",
                    "tls": True,
                    "x_forwarded": False,
                    "resources": [{"names": ["federation"], "compress": False}],
                },
            ]
            servers[side] = stack.enter_context(
                NamespacedSynapse(
                    bed.nodes[index].namespace,
                    python,
                    f"{host}:{TLS_PORT}",
                    workdir / f"synapse-{side}",
                    federation_port=TLS_PORT,
                    client_port=CLIENT_PORT,
                    ca_pem=ca,
                    extra_config={
                        "listeners": listeners,
                        "tls_certificate_path": str(ca.parent / f"{host}.pem"),
                        "tls_private_key_path": str(ca.parent / f"{host}.key"),
                        "ip_range_blacklist": [],
                    },
                )
            )
        rows = _federate(settings, "direct", servers["a"], servers["b"], restart=None)
        emulator = _emulator(bed)
    return {
        "run": "direct",
        "path": "1 link, Synapse A and B federating over HTTPS, no overlay node",
        "link": asdict(DIRECT_SHAPE),
        "emulator": emulator,
        **rows,
    }


def _federate(
    settings: Settings,
    label: str,
    a: NamespacedSynapse,
    b: NamespacedSynapse,
    restart: tuple[Testbed, int] | None,
) -> dict[str, Any]:
    try:
        alice = a.register_user("alice")
        bob = b.register_user("bob")
        room, joined = _room(alice, bob, a.server_name)
        print(f"{label}: Bob joined over federation in {joined:.1f} s", flush=True)
        watcher = SyncWatcher(bob, room)
        try:
            _warm(alice, watcher, room, settings.warmup)
            series = [measure(settings, label, alice, watcher, room, b.database)]
            if restart is not None:
                series.append(
                    measure(settings, f"{label}-restart", alice, watcher, room, b.database, restart)
                )
        finally:
            watcher.close()
    except Exception:
        print(a.diagnostics(), b.diagnostics(), sep="\n", file=sys.stderr)
        raise
    return {"join_s": round(joined, 2), "series": series}


# ---------------------------------------------------------------- the command


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.testbed.federation", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--json", type=Path, required=True, help="where to write the results")
    p.add_argument("--messages", type=int, default=Settings.messages, help="measured messages per series")
    p.add_argument(
        "--gap",
        type=float,
        nargs=2,
        default=Settings.gap_s,
        metavar=("MIN", "MAX"),
        help="seconds between two sends, drawn uniformly (default 1 2)",
    )
    p.add_argument("--runs", default="pinewood,direct", help="comma-separated: pinewood, direct")
    p.add_argument("--seed", type=int, default=Settings.seed)
    p.add_argument("--workdir", type=Path, default=Settings.workdir, help="node and Synapse data and logs")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    runs = tuple(r for r in args.runs.split(",") if r)
    if unknown := [r for r in runs if r not in ("pinewood", "direct")]:
        print(f"unknown runs: {', '.join(unknown)}", file=sys.stderr)
        return 2
    settings = Settings(
        messages=args.messages, gap_s=tuple(args.gap), seed=args.seed, runs=runs, workdir=args.workdir
    )
    try:
        netns.check_available()
    except netns.NamespaceError as exc:
        print(f"the testbed cannot run here: {exc}", file=sys.stderr)
        return 2
    python = ensure_synapse()
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    shutil.rmtree(settings.workdir, ignore_errors=True)
    remove_stale_hosts()
    results: dict[str, Any] = {
        "settings": {
            **{k: v for k, v in asdict(settings).items() if k != "workdir"},
            "synapse": SYNAPSE_VERSION,
            "delay": "send call returned on A -> B's /sync long-poll answer read (delay_ms); "
            "-> B's events.received_ts (stored_delay_ms)",
        },
        "started": time.time(),
        "runs": [],
    }
    try:
        for run in runs:
            print(f"running {run} ...", flush=True)
            results["runs"].append(
                run_pinewood(settings, python) if run == "pinewood" else run_direct(settings, python)
            )
    except KeyboardInterrupt:
        print("interrupted: Synapses, nodes and namespaces removed", file=sys.stderr)
        return 130
    finally:
        netns.remove_leftovers()
        remove_stale_hosts()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1) + "\n")
    for outcome in results["runs"]:
        for row in outcome["series"]:
            print(f"{row['label']:>17}: {describe(row)}")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
