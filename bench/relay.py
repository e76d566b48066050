"""Relay throughput: durable deposits and fetches, per store backend.

    python -m bench.relay [--backend sqlite|postgresql|both] [--deposits 10000] [--json]

Two figures for each backend:

* store: ``Store.deposit`` called directly, ``--concurrency`` at a time (1 KiB
  envelopes; each answered only once durable), then fetched back 100 at a time;
* service: a real relay process (``pinewood run --relay-enable``) and a client
  node in this process, peered over TCP on loopback; deposits go over a session
  as the relay protocol's ``deposit`` requests, ``--concurrency`` at a time,
  through the node's relay client's calls (each on a stream kept from an
  earlier request to the relay, as the node's own deposits go).

For PostgreSQL it needs ``--postgres URL`` (a database it may fill) or a local
server that :mod:`bench.postgres` can start.

Also two subcommands used by the crash-safety test:

    python -m bench.relay load  --peer URI --relay KEY --state FILE --count N
    python -m bench.relay fetch --peer URI --relay KEY --state FILE
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.postgres import postgres_url
from bench.throughput import api, free_port
from relay.errors import CallError
from relay.messages import Ack, Deposit, Fetch, Refused, Register
from relay.protocol import ProtocolError
from relay.stores import open_store
from relay.stores.base import Quota, secret_hash
from relay.streams import call
from router.daemon.config import NodeConfig
from router.daemon.node import Node
from router.logs import LogFormat, configure_logging
from router.wire.keys import Identity

BODY_BYTES = 1024
CALL_TIMEOUT_S = 5.0


# ------------------------------------------------------------------ store level


async def store_run(url: str, count: int, concurrency: int) -> dict[str, float]:
    store = open_store(url)
    await store.open()
    try:
        box, secret = os.urandom(16), os.urandom(32)
        now = time.time()
        await store.register(box, secret_hash(secret), Quota(count * 2, count * 4 * BODY_BYTES), now + 86400)
        body = os.urandom(BODY_BYTES)
        queue = iter(range(count))

        async def worker() -> None:
            for _ in queue:
                await store.deposit(box, os.urandom(16), now + 86400, body, now)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        deposit_s = time.perf_counter() - started
        fetched = 0
        started = time.perf_counter()
        while True:
            batch = await store.fetch(box, secret_hash(secret), 100, now)
            if not batch:
                break
            fetched += len(batch)
            await store.ack(box, secret_hash(secret), [s.envelope_id for s in batch])
        fetch_s = time.perf_counter() - started
        return {"deposits_s": count / deposit_s, "fetches_s": fetched / fetch_s}
    finally:
        await store.close()


# ------------------------------------------------------------------ a client node in this process


async def client_node(peer: str, workdir: Path) -> Node:
    configure_logging(LogFormat.CONSOLE, "warning")
    config = NodeConfig(
        listen=(),
        peers=(peer,),
        admin="127.0.0.1:0",
        data_dir=str(workdir),
        lan_discovery=False,
        session_timeout=10.0,
    )
    node = Node(config, Identity.generate())
    await node.start()
    return node


async def wait_for_relay(node: Node, relay: bytes, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(CallError, ProtocolError):
            await call(node.sessions, relay, Fetch(bytes(16), bytes(32), 1), 2.0)
            return
        if time.monotonic() > deadline:
            raise RuntimeError("the relay did not answer")
        await asyncio.sleep(0.2)


async def mailbox(node: Node, relay: bytes, state: Path) -> tuple[bytes, bytes]:
    if state.exists():
        saved = json.loads(state.read_text())
        return bytes.fromhex(saved["mailbox"]), bytes.fromhex(saved["secret"])
    box, secret = os.urandom(16), os.urandom(32)
    answer = await call(node.sessions, relay, Register(box, secret, int(time.time()) + 86400), CALL_TIMEOUT_S)
    if isinstance(answer, Refused):
        raise RuntimeError(f"register refused: {answer}")
    state.write_text(json.dumps({"mailbox": box.hex(), "secret": secret.hex()}))
    return box, secret


async def load(
    peer: str,
    relay: bytes,
    state: Path,
    count: int,
    concurrency: int,
    report: bool,
    outcomes: Counter[str] | None = None,
) -> float:
    """Deposit ``count`` envelopes; print each acknowledged id if ``report``;
    acknowledged deposits/s.  ``outcomes`` counts "ok", each refusal's code, and
    "failed" (a call that got no answer)."""
    outcomes = Counter() if outcomes is None else outcomes
    with tempfile.TemporaryDirectory() as tmp:
        node = await client_node(peer, Path(tmp))
        try:
            await wait_for_relay(node, relay)
            box, _ = await mailbox(node, relay, state)
            body = os.urandom(BODY_BYTES)
            queue = iter(range(count))
            acked = 0
            stop = asyncio.Event()

            async def worker() -> None:
                nonlocal acked
                for _ in queue:
                    if stop.is_set():
                        return
                    envelope_id = os.urandom(16)
                    request = Deposit(box, envelope_id, int(time.time()) + 86400, body)
                    try:
                        answer = await node.relay_client.calls.call(relay, request, CALL_TIMEOUT_S)
                    except (CallError, ProtocolError):
                        outcomes["failed"] += 1
                        stop.set()  # the relay went away: stop, as a sender would
                        return
                    if isinstance(answer, Refused):
                        outcomes[str(answer.code)] += 1
                    else:
                        acked += 1
                        outcomes["ok"] += 1
                        if report:
                            print(f"ACK {envelope_id.hex()}", flush=True)

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed = time.perf_counter() - started
            if report:
                print(f"DONE {acked}", flush=True)
            return acked / elapsed
        finally:
            await node.stop()


async def fetch(peer: str, relay: bytes, state: Path) -> None:
    """Fetch and acknowledge everything in the mailbox, printing each id once."""
    with tempfile.TemporaryDirectory() as tmp:
        node = await client_node(peer, Path(tmp))
        try:
            await wait_for_relay(node, relay)
            box, secret = await mailbox(node, relay, state)
            while True:
                answer = await call(node.sessions, relay, Fetch(box, secret, 100), 30.0)
                if isinstance(answer, Refused) or not answer.envelopes:
                    break
                ids = tuple(e.envelope_id for e in answer.envelopes)
                for envelope_id in ids:
                    print(f"ID {envelope_id.hex()}", flush=True)
                await call(node.sessions, relay, Ack(box, secret, ids), 30.0)
            print("DONE", flush=True)
        finally:
            await node.stop()


# ------------------------------------------------------------------ service level


def relay_process(workdir: Path, store_url: str) -> tuple[subprocess.Popen[bytes], str, str]:
    port, admin = free_port(), free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "router",
            "run",
            f"--listen=tcp://127.0.0.1:{port}",
            f"--admin=127.0.0.1:{admin}",
            f"--data-dir={workdir}",
            "--relay-enable",
            f"--relay-store={store_url}",
            # The service's capacity is measured, not its limits on one node.
            "--relay-requests-per-second=1000000",
            "--relay-request-burst=1000000",
            "--relay-mailbox-max-count=10000000",
            "--log-level=warning",
            "--log-format=json",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        with contextlib.suppress(OSError):
            return proc, f"tcp://127.0.0.1:{port}", api(admin, "GET", "/status")["key"]
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the relay process did not start")


def service_run(store_url: str, count: int, concurrency: int) -> dict[str, float]:
    """Deposits/s over a session, every one acknowledged: a run in which the relay
    refused any (or a call failed) is an error, not a figure."""
    outcomes: Counter[str] = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        proc, uri, key = relay_process(Path(tmp) / "relay", store_url)
        try:
            rate = asyncio.run(
                load(uri, bytes.fromhex(key), Path(tmp) / "state.json", count, concurrency, False, outcomes)
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)
    if outcomes["ok"] != count:
        raise RuntimeError(f"not every deposit was acknowledged: {dict(outcomes)} of {count}")
    return {"deposits_s": rate}


def postgres_for_bench(url: str | None) -> str | None:
    if url:
        return url
    try:
        return postgres_url(f"bench{os.getpid()}")
    except BaseException:  # pytest.skip raises a BaseException subclass
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command")
    for name in ("load", "fetch"):
        cmd = sub.add_parser(name)
        cmd.add_argument("--peer", required=True)
        cmd.add_argument("--relay", required=True)
        cmd.add_argument("--state", required=True)
        cmd.add_argument("--count", type=int, default=10_000)
        cmd.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--deposits", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres", help="postgresql:// URL of a database the benchmark may fill")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true", help="a short SQLite-only run (for the quick report)")
    args = parser.parse_args(argv)
    if args.quick:
        args.backend, args.deposits, args.runs, args.concurrency = "sqlite", 500, 1, 32
    if args.command == "load":
        asyncio.run(
            load(args.peer, bytes.fromhex(args.relay), Path(args.state), args.count, args.concurrency, True)
        )
        return 0
    if args.command == "fetch":
        asyncio.run(fetch(args.peer, bytes.fromhex(args.relay), Path(args.state)))
        return 0
    backends: dict[str, str | None] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.backend in ("sqlite", "both"):
            backends["sqlite"] = None
        if args.backend in ("postgresql", "both"):
            backends["postgresql"] = postgres_for_bench(args.postgres)
        result: dict[str, Any] = {
            "deposits": args.deposits,
            "concurrency": args.concurrency,
            "runs": args.runs,
            "envelope_bytes": BODY_BYTES,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "backends": {},
        }
        for name, pg in backends.items():
            if name == "postgresql" and pg is None:
                result["backends"][name] = {"skipped": "no PostgreSQL server (pass --postgres URL)"}
                continue
            stores, services = [], []
            for run in range(args.runs):
                url = pg if pg is not None else f"sqlite:///{Path(tmp) / f'store{run}.db'}"
                stores.append(asyncio.run(store_run(url, args.deposits, args.concurrency)))
                url = pg if pg is not None else f"sqlite:///{Path(tmp) / f'service{run}.db'}"
                services.append(service_run(url, args.deposits, args.concurrency))
            result["backends"][name] = {
                "store_deposits_s": round(statistics.median(s["deposits_s"] for s in stores)),
                "store_fetches_s": round(statistics.median(s["fetches_s"] for s in stores)),
                "service_deposits_s": round(statistics.median(s["deposits_s"] for s in services)),
                "per_run": {"store": stores, "service": services},
            }
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        shape = f"{args.deposits} deposits of {BODY_BYTES} B, {args.concurrency} at a time"
        print(f"relay, {shape}, median of {args.runs}")
        for name, figures in result["backends"].items():
            if "skipped" in figures:
                print(f"  {name:<10} skipped: {figures['skipped']}")
                continue
            print(
                f"  {name:<10} store: {figures['store_deposits_s']:>7,} durable deposits/s, "
                f"{figures['store_fetches_s']:>7,} fetches/s;  over a session: "
                f"{figures['service_deposits_s']:>6,} deposits/s"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
