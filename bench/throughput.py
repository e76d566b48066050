"""Throughput of a chain of three node processes, against a bare forwarder chain.

    python -m bench.throughput [--runs 3] [--seconds 5] [--json]

A generator process peers with the first node and sends 1 KiB traffic frames
addressed to the third node as fast as the first node accepts them; the third
node's delivered-frame counter gives frames/s and MB/s.  The baseline is the
same chain of processes running ``bench.bare_forwarder``, fed by the same
generator with the same bytes, just before each router run; the ratio is the
median of each run's against its own baseline.  During each router run,
overlay pings from the first node to the third measure latency under that
load.  Figures are medians over the runs.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from router.daemon.build import is_compiled
from router.wire import Identity, PublicKey, TrafficFrame, build_handshake, encode_frame

PAYLOAD_BYTES = 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def api(port: int, method: str, path: str, body: object = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def generate(port: int, destination: str, seconds: float) -> None:
    """The generator (run as its own process): handshake, then frames as fast as accepted."""
    me = Identity.generate()
    frame = encode_frame(
        TrafficFrame((), (), PublicKey(bytes.fromhex(destination)), me.public_key, os.urandom(PAYLOAD_BYTES))
    )
    batch = frame * 256
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(build_handshake(me))
        sock.setblocking(False)
        end = time.monotonic() + seconds
        pending = memoryview(batch)
        while time.monotonic() < end:
            # Wait for room rather than spin: the generator shares the machine's
            # processors with the chain it measures.
            readable, writable, _ = select.select([sock], [sock], [], 0.1)
            if writable:
                with contextlib.suppress(BlockingIOError):
                    sent = sock.send(pending)
                    pending = pending[sent:] if sent < len(pending) else memoryview(batch)
            if readable:
                with contextlib.suppress(BlockingIOError):
                    sock.recv(65536)


def spawn_generator(port: int, destination: str, seconds: float) -> subprocess.Popen[bytes]:
    code = f"from bench.throughput import generate; generate({port}, {destination!r}, {seconds})"
    return subprocess.Popen([sys.executable, "-c", code])


def burn(seconds: float) -> None:
    """Keep one processor busy for ``seconds`` (run as its own process)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


class Burners:
    """``count`` processes that only keep processors busy: the floor run's load."""

    def __init__(self, count: int, seconds: float) -> None:
        code = f"from bench.throughput import burn; burn({seconds})"
        self.procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(count)]

    def wait(self, timeout: float | None = None) -> None:
        for proc in self.procs:
            proc.wait(timeout)


def rate(samples: list[tuple[float, int]], start: float, end: float) -> float:
    """Counter rate over [start, end], from the samples that bracket it most closely
    (a busy node may answer its admin API late, so samples can be sparse)."""
    before = [s for s in samples if s[0] <= start] or samples[:1]
    after = [s for s in samples if s[0] >= end] or samples[-1:]
    (t0, n0), (t1, n1) = before[-1], after[0]
    if t1 <= t0:
        raise RuntimeError("not enough samples in the measuring window")
    return (n1 - n0) / (t1 - t0)


def router_run(
    seconds: float,
    workdir: Path,
    link: str = "tcp",
    nodes: int = 3,
    quic_engine: str = "qh3",
    node_args: tuple[str, ...] = (),
    burners: int = 0,
    floods: int = 1,
) -> dict[str, Any]:
    """The router chain, its nodes peered over ``link`` (QUIC peerings on
    ``quic_engine``) and run with ``node_args`` besides; ``floods`` generators,
    each a node of its own, enter the first router by TCP.  With ``burners``, no
    generator: that many processes keep the processors busy instead, and the
    pings measure what contention alone costs them.  With more than one flood,
    ``flood_shares`` is the part of what the first router took in that came
    from each."""
    ports = [free_port() for _ in range(nodes)]
    admins = [free_port() for _ in range(nodes)]
    entry = free_port()
    procs = []
    try:
        for i in range(nodes):
            args = [
                sys.executable, "-m", "router", "run",
                f"--listen={link}://127.0.0.1:{ports[i]}", f"--admin=127.0.0.1:{admins[i]}",
                f"--data-dir={workdir / f'n{i}'}", "--log-level=warning", "--log-format=json",
                "--handshakes-per-minute=1000", f"--quic-engine={quic_engine}", *node_args,
            ]  # fmt: skip
            if i == 0 and link != "tcp":
                args.append(f"--listen=tcp://127.0.0.1:{entry}")
            if i:
                args.append(f"--peer={link}://127.0.0.1:{ports[i - 1]}")
            procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        keys = []
        for admin in admins:
            for _ in range(200):
                with contextlib.suppress(OSError):
                    keys.append(api(admin, "GET", "/status")["key"])
                    break
                time.sleep(0.05)
        for _ in range(300):  # converged when the first node reaches the last
            if api(admins[0], "POST", "/ping", {"key": keys[-1], "timeout": 1})["rtt_ms"] is not None:
                break
            time.sleep(0.1)
        generators: list[subprocess.Popen[bytes] | Burners] = (
            [Burners(burners, seconds + 2)]
            if burners
            else [
                spawn_generator(ports[0] if link == "tcp" else entry, keys[-1], seconds + 2)
                for _ in range(floods)
            ]
        )
        samples: list[tuple[float, int]] = []
        rtts: list[float] = []
        started = time.monotonic()

        def pinger() -> None:
            # Pings in their own thread, so a slow answer never delays the samples.
            while time.monotonic() - started < seconds + 1.5:
                answer = api(admins[0], "POST", "/ping", {"key": keys[-1], "timeout": 2})["rtt_ms"]
                if answer is not None and time.monotonic() - started > 1.0:
                    rtts.append(answer)
                time.sleep(0.05)

        def taken_in() -> dict[str, int]:
            """Frames the first router has read from each generator so far."""
            peers = api(admins[0], "GET", "/peers")
            return {p["key"]: int(p["frames_in"]) for p in peers if "port" in p and p["key"] not in keys}

        pings = threading.Thread(target=pinger)
        pings.start()
        window: list[dict[str, int]] = []
        while time.monotonic() - started < seconds + 1.5:
            samples.append((time.monotonic(), api(admins[-1], "GET", "/status")["traffic"]["delivered"]))
            if floods > 1 and len(window) < 2 and time.monotonic() - started >= 1.0 + seconds * len(window):
                window.append(taken_in())
            time.sleep(0.05)
        pings.join()
        for generator in generators:
            generator.wait(timeout=30)
        frames = rate(samples, started + 1.0, started + 1.0 + seconds)
        quantiles = statistics.quantiles(rtts, n=100) if len(rtts) >= 2 else [float("nan")] * 99
        result: dict[str, Any] = {
            "frames_s": frames,
            "ping_p50_ms": quantiles[49],
            "ping_p99_ms": quantiles[98],
            "pings": len(rtts),
        }
        if len(window) == 2:
            taken = [window[1][key] - window[0].get(key, 0) for key in window[1]]
            result["flood_shares"] = sorted(t / sum(taken) for t in taken) if sum(taken) else []
        return result
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def baseline_run(seconds: float) -> dict[str, float]:
    ports = [free_port() for _ in range(3)]
    procs = []
    try:
        sink = subprocess.Popen(
            [sys.executable, "-m", "bench.bare_forwarder", f"--listen={ports[2]}"],
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(sink)
        assert sink.stdout is not None
        sink.stdout.readline()
        for i in (1, 0):
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.bare_forwarder",
                    f"--listen={ports[i]}",
                    f"--forward={ports[i + 1]}",
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            procs.append(proc)
            assert proc.stdout is not None
            proc.stdout.readline()
        generator = spawn_generator(ports[0], bytes(32).hex(), seconds + 2)
        samples: list[tuple[float, int]] = []
        started = time.monotonic()
        while time.monotonic() - started < seconds + 1.5:
            line = sink.stdout.readline().split()
            samples.append((float(line[2]), int(line[1])))
        generator.wait(timeout=30)
        return {"frames_s": rate(samples, started + 1.0, started + 1.0 + seconds)}
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


def quic_stream_run(seconds: float, engine: str = "aioquic") -> dict[str, float]:
    """A QUIC baseline: a bare stream of ``engine``'s stock client and server from
    one process to another."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.bare_quic", engine, "serve", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        server.stdout.readline()
        client = subprocess.run(
            [sys.executable, "-m", "bench.bare_quic", engine, "send", str(port), str(seconds)],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        )
        return {"mb_s": float(client.stdout.split()[-1])}
    finally:
        server.kill()
        server.wait()
        if server.stdout is not None:
            server.stdout.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--link", choices=["tcp", "tls", "quic", "ws", "wss"], default="tcp", help="peerings in the chain"
    )
    parser.add_argument("--nodes", type=int, choices=[2, 3], default=3, help="router processes in the chain")
    parser.add_argument(
        "--quic-engine",
        choices=["qh3", "aioquic"],
        default="qh3",
        help="the QUIC library of quic:// peerings",
    )
    parser.add_argument(
        "--node-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="an argument for every router process (repeatable), e.g. --node-arg=--peer-receive-buffer=0",
    )
    parser.add_argument(
        "--floods",
        type=int,
        choices=[1, 2],
        default=1,
        help="generators, each a node of its own, flooding the chain at once (2: how evenly the "
        "first router shares itself between them)",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also ping through the idle chain while two processes keep both processors busy: "
        "the wait that processor contention alone adds, beside the ping under load",
    )
    args = parser.parse_args(argv)
    routers, baselines, quic_baselines, qh3_baselines, floors = [], [], [], [], []
    chain = functools.partial(
        router_run,
        args.seconds,
        link=args.link,
        nodes=args.nodes,
        quic_engine=args.quic_engine,
        node_args=tuple(args.node_arg),
        floods=args.floods,
    )
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            baselines.append(baseline_run(args.seconds))
            routers.append(chain(Path(tmp) / f"run{run}"))
            if args.floor:
                floors.append(chain(Path(tmp) / f"floor{run}", burners=2, floods=1))
            if args.link == "quic":
                quic_baselines.append(quic_stream_run(args.seconds, "aioquic"))
                qh3_baselines.append(quic_stream_run(args.seconds, "qh3"))
    base = statistics.median(b["frames_s"] for b in baselines)
    ours = statistics.median(r["frames_s"] for r in routers)
    frame_bytes = PAYLOAD_BYTES + 10 + 2 + 4 + 64 + 33
    result: dict[str, Any] = {
        "link": args.link,
        "quic_engine": args.quic_engine if args.link == "quic" else None,
        "nodes": args.nodes,
        "runs": args.runs,
        "seconds": args.seconds,
        "payload_bytes": PAYLOAD_BYTES,
        "build": "compiled" if is_compiled() else "pure",
        "baseline_frames_s": round(base),
        "baseline_mb_s": round(base * frame_bytes / 1e6, 1),
        "router_frames_s": round(ours),
        "router_mb_s": round(ours * frame_bytes / 1e6, 1),
        # Each router run against the baseline run just before it: the
        # machine's speed drifts between runs (the bare chain by a third
        # here), and a pair shares its moment.
        "router_vs_baseline": round(
            statistics.median(r["frames_s"] / b["frames_s"] for r, b in zip(routers, baselines, strict=True)),
            3,
        ),
        "ping_p50_ms_under_load": round(statistics.median(r["ping_p50_ms"] for r in routers), 2),
        "ping_p99_ms_under_load": round(statistics.median(r["ping_p99_ms"] for r in routers), 2),
        "per_run": {"baseline": baselines, "router": routers},
    }
    if args.floods > 1:
        shares = [min(r["flood_shares"]) for r in routers if r.get("flood_shares")]
        result["floods"] = args.floods
        result["smaller_flood_share"] = round(statistics.median(shares), 3) if shares else None
    if floors:
        result["ping_p50_ms_contention_only"] = round(statistics.median(f["ping_p50_ms"] for f in floors), 2)
        result["ping_p99_ms_contention_only"] = round(statistics.median(f["ping_p99_ms"] for f in floors), 2)
        result["per_run"]["contention_only"] = floors
    if quic_baselines:
        quic_mb = statistics.median(q["mb_s"] for q in quic_baselines)
        result["bare_aioquic_stream_mb_s"] = round(quic_mb, 1)
        result["router_vs_bare_aioquic"] = round(ours * frame_bytes / 1e6 / quic_mb, 3)
        result["per_run"]["bare_aioquic"] = quic_baselines
        qh3_mb = statistics.median(q["mb_s"] for q in qh3_baselines)
        result["bare_qh3_stream_mb_s"] = round(qh3_mb, 1)
        result["router_vs_bare_qh3"] = round(ours * frame_bytes / 1e6 / qh3_mb, 3)
        result["per_run"]["bare_qh3"] = qh3_baselines
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        r = result
        runs = f"median of {args.runs} runs of {args.seconds:.0f} s"
        over = f"{args.link} ({args.quic_engine})" if args.link == "quic" else args.link
        print(f"{args.nodes}-process chain over {over}, 1 KiB payloads, {runs}, {r['build']} build")
        print(f"  bare forwarder : {r['baseline_frames_s']:>9,} frames/s  {r['baseline_mb_s']:>7} MB/s")
        print(f"  pinewood       : {r['router_frames_s']:>9,} frames/s  {r['router_mb_s']:>7} MB/s")
        print(f"  ratio          : {r['router_vs_baseline']:.1%} of the bare forwarder")
        print(
            f"  ping under load: p50 {r['ping_p50_ms_under_load']} ms, p99 {r['ping_p99_ms_under_load']} ms"
        )
        if r.get("smaller_flood_share") is not None:
            share = r["smaller_flood_share"]
            print(f"  two floods: the smaller took {share:.1%} of what the first router read")
        if "ping_p99_ms_contention_only" in r:
            print(
                f"  ping, idle chain, both processors busy: p50 {r['ping_p50_ms_contention_only']} ms, "
                f"p99 {r['ping_p99_ms_contention_only']} ms"
            )
        if "bare_aioquic_stream_mb_s" in r:
            print(f"  bare aioquic stream between two processes: {r['bare_aioquic_stream_mb_s']} MB/s")
            print(f"  pinewood over QUIC / bare aioquic stream: {r['router_vs_bare_aioquic']:.1%}")
            print(f"  bare qh3 stream between two processes: {r['bare_qh3_stream_mb_s']} MB/s")
            print(f"  pinewood over QUIC / bare qh3 stream: {r['router_vs_bare_qh3']:.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
