"""Sessions and the gateway under load, through a chain of three router processes.

    python -m bench.sessions [--runs 3] [--seconds 5] [--clients 16] [--json]

Node a runs the federation proxy, node c pipes inbound streams to a sink
process standing in for a homeserver; b sits between them.  Two figures:

* bulk: one CONNECT tunnel (no TLS inside, so the proxy carries it as it is)
  sends one chunked federation request as fast as it can for ``--seconds``;
  the sink counts the body's bytes as they arrive (chunk framing included,
  under 0.02%).  That is one session stream end to end, read and passed on
  by the far node's inbound gateway.  The baseline is a bare aioquic
  stream between two processes, measured in the same run
  (:mod:`bench.bare_quic`).
* requests: ``--clients`` tunnels with TLS inside (the gateway's CA, as Synapse
  uses it), each sending small keep-alive requests one after another, as
  federation does; requests per second over all of them.

Figures are medians over the runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.throughput import api, free_port, quic_stream_run
from router.matrix.names import server_name

REQUEST_BODY = b'{"pdus": [], "edus": [], "origin_server_ts": 0, "origin": "x"}' * 16
RESPONSE_BODY = b'{"pdus": {}}'
BULK_PATH = b"/_matrix/federation/v1/send/bulk"
BULK_END = b"\r\n0\r\n\r\n"
UNLIMITED = ["--gateway-requests-per-second=100000", "--gateway-request-burst=1000000"]
"""The chain measures what the gateway can carry, not one node's fair share."""


def signed_by(name: str) -> str:
    """An X-Matrix authorization naming ``name`` (the sink checks no signature)."""
    return f'X-Matrix origin="{name}",key="ed25519:a",sig="c2ln"'


# ------------------------------------------------------------------ the sink (its own process)


async def _sink_bulk(buffer: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Count a chunked body's bytes until its last chunk, then answer the count."""
    total, tail = len(buffer), buffer[-len(BULK_END) :]
    while not tail.endswith(BULK_END):
        data = await reader.read(1 << 16)
        if not data:
            writer.close()
            return
        total += len(data)
        tail = (tail + data)[-len(BULK_END) :]
    answer = str(total).encode()
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))
    await writer.drain()
    writer.close()


async def _sink_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    buffer = b""
    while True:
        while b"\r\n\r\n" not in buffer:
            data = await reader.read(1 << 16)
            if not data:
                writer.close()
                return
            buffer += data
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        if head.split(b" ")[1] == BULK_PATH:
            await _sink_bulk(buffer, reader, writer)
            return
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        while len(buffer) < length:
            buffer += await reader.read(1 << 16)
        buffer = buffer[length:]
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(RESPONSE_BODY)).encode()
            + b"\r\n\r\n"
            + RESPONSE_BODY
        )
        await writer.drain()


async def _sink(port: int) -> None:
    server = await asyncio.start_server(_sink_client, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


# ------------------------------------------------------------------ the chain


class Chain:
    """Three routers a - b - c with the proxy on a and the sink behind c."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.proxy_port = free_port()
        self.sink_port = free_port()
        self.admins = [free_port() for _ in range(3)]

    def __enter__(self) -> Chain:
        sink = subprocess.Popen(
            [sys.executable, "-m", "bench.sessions", "--sink", str(self.sink_port)], stdout=subprocess.PIPE
        )
        self.procs.append(sink)
        assert sink.stdout is not None
        sink.stdout.readline()
        ports = [free_port() for _ in range(3)]
        for i in range(3):
            args = [
                sys.executable, "-m", "router", "run",
                f"--listen=tcp://127.0.0.1:{ports[i]}", f"--admin=127.0.0.1:{self.admins[i]}",
                f"--data-dir={self.workdir / f'n{i}'}", "--log-level=warning", "--log-format=json",
            ]  # fmt: skip
            if i:
                args.append(f"--peer=tcp://127.0.0.1:{ports[i - 1]}")
            if i == 0:
                args.append(f"--gateway-listen=127.0.0.1:{self.proxy_port}")
            if i == 2:
                args += [f"--homeserver=http://127.0.0.1:{self.sink_port}", *UNLIMITED]
            self.procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        keys = []
        for admin in self.admins:
            for _ in range(200):
                with contextlib.suppress(OSError):
                    keys.append(api(admin, "GET", "/status")["key"])
                    break
                time.sleep(0.05)
        for _ in range(300):
            if api(self.admins[0], "POST", "/ping", {"key": keys[-1], "timeout": 1})["rtt_ms"] is not None:
                break
            time.sleep(0.1)
        self.name = server_name(bytes.fromhex(keys[-1]))
        self.origin = server_name(bytes.fromhex(keys[0]))
        self.ca = self.workdir / "n0" / "gateway" / "gateway-ca.pem"
        return self

    def __exit__(self, *_: object) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()

    def tunnel(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.proxy_port), timeout=30)
        target = f"{self.name}:8448"
        sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                raise RuntimeError(f"proxy closed the tunnel: {answer!r}")
            answer += chunk
        if not answer.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"proxy refused: {answer!r}")
        return sock

    def bulk(self, seconds: float) -> float:
        """MB/s through one tunnel: bytes the sink received over the sending time."""
        chunk = bytes(range(256)) * 256  # no CR LF in it: the sink finds the end by its bytes
        framed = b"%x\r\n%s\r\n" % (len(chunk), chunk)
        head = b"PUT %s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\nTransfer-Encoding: chunked\r\n\r\n" % (
            BULK_PATH,
            self.name.encode(),
            signed_by(self.origin).encode(),
        )
        with self.tunnel() as sock:
            sock.sendall(head)
            started = time.monotonic()
            while time.monotonic() - started < seconds:
                sock.sendall(framed)
            sock.sendall(b"0\r\n\r\n")
            answer = b""
            while not (answer.count(b"\r\n\r\n") and answer.split(b"\r\n\r\n", 1)[1]):
                data = sock.recv(4096)
                if not data:
                    raise RuntimeError(f"the bulk request was not answered: {answer!r}")
                answer += data
            elapsed = time.monotonic() - started
            if not answer.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"the bulk request was refused: {answer!r}")
            received = int(answer.split(b"\r\n\r\n", 1)[1])
        return received / elapsed / 1e6

    def requests(self, seconds: float, clients: int) -> float:
        """Requests/s over ``clients`` keep-alive TLS tunnels."""
        context = ssl.create_default_context(cafile=str(self.ca))
        counts = [0] * clients
        errors: list[BaseException] = []
        start = threading.Barrier(clients + 1)
        window: list[float] = []

        def client(index: int) -> None:
            try:
                conn = http.client.HTTPSConnection("127.0.0.1", self.proxy_port, timeout=30, context=context)
                conn.set_tunnel(self.name, 8448)
                conn.request("GET", "/_matrix/federation/v1/version")  # warm: session, tunnel, TLS
                conn.getresponse().read()
                start.wait()
                end = window[0] + seconds
                txn = 0
                while time.monotonic() < end:
                    txn += 1
                    conn.request(
                        "PUT",
                        f"/_matrix/federation/v1/send/{index}-{txn}",
                        body=REQUEST_BODY,
                        headers={"Authorization": signed_by(self.origin)},
                    )
                    response = conn.getresponse()
                    response.read()
                    if response.status != 200:
                        raise RuntimeError(f"status {response.status}")
                    counts[index] += 1
                conn.close()
            except BaseException as exc:  # reported below
                errors.append(exc)
                with contextlib.suppress(threading.BrokenBarrierError):
                    start.abort()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for thread in threads:
            thread.start()
        window.append(time.monotonic() + 0.001)
        with contextlib.suppress(threading.BrokenBarrierError):
            start.wait()
        began = time.monotonic()
        for thread in threads:
            thread.join()
        if errors:
            raise RuntimeError(f"request client failed: {errors[0]!r}")
        return sum(counts) / max(seconds, time.monotonic() - began - 0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sink:
        asyncio.run(_sink(args.sink))
        return 0
    bulk, bare, bare_qh3, rps = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            with Chain(Path(tmp) / f"run{run}") as chain:
                bulk.append(chain.bulk(args.seconds))
                rps.append(chain.requests(args.seconds, args.clients))
            bare.append(quic_stream_run(args.seconds, "aioquic")["mb_s"])
            bare_qh3.append(quic_stream_run(args.seconds, "qh3")["mb_s"])
    result: dict[str, Any] = {
        "runs": args.runs,
        "seconds": args.seconds,
        "clients": args.clients,
        "session_stream_mb_s": round(statistics.median(bulk), 2),
        "bare_aioquic_stream_mb_s": round(statistics.median(bare), 2),
        "session_vs_bare_aioquic": round(statistics.median(bulk) / statistics.median(bare), 3),
        "bare_qh3_stream_mb_s": round(statistics.median(bare_qh3), 2),
        "gateway_requests_s": round(statistics.median(rps)),
        "per_run": {
            "session_mb_s": bulk,
            "bare_aioquic_mb_s": bare,
            "bare_qh3_mb_s": bare_qh3,
            "requests_s": rps,
        },
    }
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        runs = f"median of {args.runs} runs of {args.seconds:g} s"
        print(f"sessions across a 3-process chain (a - b - c), {runs}")
        print(f"  one session stream, CONNECT tunnel : {result['session_stream_mb_s']:>8} MB/s")
        print(f"  bare aioquic stream, two processes : {result['bare_aioquic_stream_mb_s']:>8} MB/s")
        print(f"  ratio                              : {result['session_vs_bare_aioquic']:.1%}")
        qh3 = result["bare_qh3_stream_mb_s"]
        print(f"  bare qh3 stream, two processes     : {qh3:>8} MB/s (sessions run on aioquic)")
        print(
            f"  small federation requests, TLS inside, {args.clients} keep-alive tunnels: "
            f"{result['gateway_requests_s']:,} requests/s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
