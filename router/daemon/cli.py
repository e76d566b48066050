"""The ``pinewood`` command line: the daemon, and a client of its admin API."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import signal
import statistics
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import structlog
import uvloop

from router import __version__
from router.daemon.admin import start_admin
from router.daemon.config import ConfigError, NodeConfig, load_config
from router.daemon.errors import DaemonError, StartupError
from router.daemon.keyfile import KeyFileError, load_or_create_identity, write_key_file
from router.daemon.logs import configure_logging
from router.daemon.node import Node, startup_step
from router.daemon.settings import DEFAULT_ADMIN, add_flags, env_name, flag_values
from router.gateway.names import server_name
from router.links.multicast import DiscoveryError
from router.quic.errors import QuicEngineError
from router.wire.keys import Identity

log = structlog.get_logger("pinewood")


class CLIError(DaemonError):
    """A client command failed; the message is for the operator."""


# ------------------------------------------------------------------ run


def _log_unhandled(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The event loop's last resort: an error no task handled, as one structured event."""
    exc = context.get("exception")
    log.error(
        "unhandled error",
        message=context.get("message"),
        error=f"{type(exc).__name__}: {exc}" if exc is not None else None,
        exc_info=exc if isinstance(exc, BaseException) else None,
    )


async def _serve(config: NodeConfig, identity: Identity) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_log_unhandled)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with startup_step("data_dir", f"cannot set the node up in {config.data_path}"):
        node = Node(config, identity)
    try:
        await node.start()
        host, port = config.admin_address
        with startup_step("admin", f"cannot listen for the admin API on {host}:{port}"):
            admin = await start_admin(node, host, port)
    except BaseException:
        with contextlib.suppress(Exception):  # the first failure is the one to report
            await node.stop()
        raise
    log.info("started")
    await stop.wait()
    log.info("stopping")
    admin.close()
    await node.stop()
    log.info("stopped")


def _cmd_run(args: argparse.Namespace) -> int:
    config = load_config(Path(args.config) if args.config else None, flags=flag_values(args))
    configure_logging(config.log_format, config.log_level)
    try:
        identity, source = load_or_create_identity(config.key_path)
        log.info("pinewood starting", version=__version__, key=identity.public_key.hex(), key_source=source)
        if config.uvloop:
            uvloop.run(_serve(config, identity))
        else:
            asyncio.run(_serve(config, identity))
    except (KeyFileError, StartupError, DiscoveryError, QuicEngineError) as exc:
        log.error("cannot start", reason=str(exc))
        return 1
    except OSError as exc:  # one that no start-up step named
        log.error("cannot start", reason=f"{exc.strerror or exc}")
        return 1
    return 0


def _cmd_keygen(args: argparse.Namespace) -> int:
    identity = Identity.generate()
    if args.output == "-":
        print(identity.seed.hex())
        print(f"public key: {identity.public_key.hex()}", file=sys.stderr)
        return 0
    write_key_file(Path(args.output), identity)
    print(identity.public_key.hex())
    return 0


# ------------------------------------------------------------------ admin client


def _admin_url(args: argparse.Namespace) -> str:
    address = args.admin or os.environ.get(env_name("admin")) or DEFAULT_ADMIN
    return f"http://{address}"


def _call(
    args: argparse.Namespace, method: str, path: str, body: object = None, timeout: float = 10.0
) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(_admin_url(args) + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error", exc.reason)
        except ValueError:
            message = exc.reason
        raise CLIError(f"{method} {path}: {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise CLIError(f"cannot reach the admin API at {_admin_url(args)}: {exc}") from None
    return json.loads(raw)


def _cmd_server_name(args: argparse.Namespace) -> int:
    config = load_config(Path(args.config) if args.config else None, flags=flag_values(args))
    identity, _ = load_or_create_identity(config.key_path)
    key = bytes(identity.public_key)
    print(server_name(key, config.server_name_suffix))
    hex_name = key.hex() + config.server_name_suffix
    print(f"(the same node as {hex_name}; use the form above for Synapse)", file=sys.stderr)
    return 0


def _cmd_sessions(args: argparse.Namespace) -> int:
    answer = _call(args, "GET", "/sessions")
    if args.json:
        print(json.dumps(answer, indent=1))
        return 0
    if not answer["sessions"]:
        print("no sessions")
    for s in answer["sessions"]:
        state = "closing" if s["closing"] else "up" if s["established"] else "connecting"
        rtt = f"{s['rtt_ms']} ms" if s["rtt_ms"] is not None else "-"
        print(
            f"{s['key']}  {s['protocol'] or '?':<8} {s['direction']:<8} {state:<10} "
            f"streams {s['streams']:<4} out {s['bytes_sent']} B  in {s['bytes_received']} B  rtt {rtt}"
        )
    return 0


def _cmd_gateway(args: argparse.Namespace) -> int:
    answer = _call(args, "GET", "/gateway")
    if args.json:
        print(json.dumps(answer, indent=1))
        return 0
    print(f"server name      {answer['server_name']}")
    print(f"hex server name  {answer['hex_server_name']}")
    print(f"federation proxy {answer.get('proxy') or 'off'}")
    if "ca_certificate" in answer:
        print(f"CA certificate   {answer['ca_certificate']}")
    print(f"homeserver       {answer.get('homeserver') or 'off (no inbound federation)'}")
    for side in ("proxy_counters", "inbound_counters"):
        for event, count in sorted(answer.get(side, {}).items()):
            print(f"  {side.split('_')[0]:<8} {event}: {count}")
    return 0


def _cmd_relay(args: argparse.Namespace) -> int:
    answer = _call(args, "GET", "/relay")
    if args.json:
        print(json.dumps(answer, indent=1))
        return 0
    print(f"our relays       {', '.join(answer['relays']) or 'none'}")
    print(f"registered on    {', '.join(answer['registered']) or 'none'}")
    print(f"record published {'yes' if answer['record_published'] else 'no'}")
    print(f"records held     {answer['records_held']} (for nodes near us in key space)")
    for event, count in sorted(answer["client_counters"].items()):
        print(f"  client  {event}: {count}")
    if answer["serving"]:
        store = answer["store"]
        counts = f"{store['mailboxes']} mailboxes, {store['envelopes']} envelopes, {store['bytes']} bytes"
        print(f"serving          {counts}")
        for event, count in sorted(answer["service_counters"].items()):
            print(f"  service {event}: {count}")
    else:
        print("serving          no (relay_enable is off)")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    status = _call(args, "GET", "/status")
    if args.json:
        print(json.dumps(status, indent=1))
        return 0
    parent = status["parent"]
    print(f"key          {status['key']}")
    print(f"root         {status['root']['key']} (sequence {status['root']['sequence']})")
    print(f"coordinates  {status['coordinates']}")
    parent_text = f"{parent['key']} on port {parent['port']}" if parent else "none (this node is root)"
    print(f"parent       {parent_text}")
    print(f"descending   {status['descending'] or 'none'}")
    print(f"peers        {status['peers']}")
    print(f"listening    {', '.join(status['listen']) or 'nowhere'}")
    traffic = status["traffic"]
    t = traffic
    print(f"traffic      forwarded {t['forwarded']}, delivered {t['delivered']}, sent {t['sent']}")
    if status["drops"]:
        print("drops        " + ", ".join(f"{k}: {v}" for k, v in sorted(status["drops"].items())))
    return 0


def _cmd_peers(args: argparse.Namespace) -> int:
    peers = _call(args, "GET", "/peers")
    if args.json:
        print(json.dumps(peers, indent=1))
        return 0
    print(f"{'port':>4}  {'key':16}  {'type':4}  {'in/out frames':>17}  {'queue':>5}  uri")
    for peer in peers:
        if "port" not in peer:
            blank = ""
            print(f"{'-':>4}  {'(not connected)':16}  tcp   {blank:>17}  {blank:>5}  {peer['uri']}", end="")
            print(f"  {peer['last_error']}")
            continue
        frames = f"{peer['frames_in']}/{peer['frames_out']}"
        parent = " (parent)" if peer["is_parent"] else ""
        print(
            f"{peer['port']:>4}  {peer['key'][:16]}  {peer['link_type']:4}  {frames:>17}  "
            f"{peer['queue_depth']:>5}  {peer['uri']}{parent}"
        )
    return 0


def _cmd_peer(args: argparse.Namespace) -> int:
    if args.action == "add":
        result = _call(args, "POST", "/peers", {"uri": args.uri})
    else:
        result = _call(args, "DELETE", f"/peers?uri={quote(args.uri, safe='')}")
    print(json.dumps(result) if args.json else f"{args.action}: {args.uri}")
    return 0


def _cmd_ping(args: argparse.Namespace) -> int:
    rtts: list[float] = []
    sent = 0
    if not args.json:
        print(f"PING {args.key} over the overlay")
    try:
        while args.count == 0 or sent < args.count:
            if sent:
                time.sleep(args.interval)
            sent += 1
            result = _call(
                args, "POST", "/ping", {"key": args.key, "timeout": args.timeout}, args.timeout + 10
            )
            rtt = result["rtt_ms"]
            if rtt is not None:
                rtts.append(rtt)
            if args.json:
                print(json.dumps({"seq": sent, "rtt_ms": rtt}), flush=True)
            elif rtt is None:
                print(f"no answer from {args.key[:16]}: seq={sent}", flush=True)
            else:
                print(f"answer from {args.key[:16]}: seq={sent} time={rtt:.3f} ms", flush=True)
    except KeyboardInterrupt:
        pass
    loss = 100.0 * (sent - len(rtts)) / sent if sent else 0.0
    if not args.json:
        print(f"--- {args.key[:16]} ping statistics ---")
        print(f"{sent} sent, {len(rtts)} received, {loss:.0f}% loss")
        if rtts:
            spread = statistics.pstdev(rtts)
            avg = statistics.fmean(rtts)
            print(f"rtt min/avg/max/mdev = {min(rtts):.3f}/{avg:.3f}/{max(rtts):.3f}/{spread:.3f} ms")
    return 0 if rtts else 1


# ------------------------------------------------------------------ parser


def _cmd_bench(args: argparse.Namespace) -> int:
    try:  # imported only here: plotting libraries are slow to load
        entry = importlib.import_module("bench.entry")
    except ImportError as exc:  # installed without the benchmarks
        raise CLIError(f"the benchmarks are not installed: {exc}") from None
    result: int = entry.main(args.bench_args)
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pinewood", description="Pinecone-compatible overlay router")
    parser.add_argument("--version", action="version", version=f"pinewood {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the node")
    run.add_argument("--config", help="TOML configuration file")
    add_flags(run)  # every setting, from the table in router.daemon.settings
    run.set_defaults(handler=_cmd_run)

    keygen = commands.add_parser("keygen", help="create a new private key file")
    keygen.add_argument("output", help="file to create (mode 0600), or '-' to print the seed")
    keygen.set_defaults(handler=_cmd_keygen)

    def client(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument(
            "--admin", help=f"admin API address (default ${env_name('admin')} or {DEFAULT_ADMIN})"
        )
        sub.add_argument("--json", action="store_true", help="machine-readable output")
        return sub

    naming = commands.add_parser("server-name", help="print the homeserver server name for this node's key")
    naming.add_argument("--config", help="TOML configuration file")
    add_flags(naming, ("data_dir", "key_file", "server_name_suffix"))
    naming.set_defaults(handler=_cmd_server_name)
    client("status", "show the node's state").set_defaults(handler=_cmd_status)
    client("sessions", "list end-to-end sessions").set_defaults(handler=_cmd_sessions)
    client("gateway", "show the homeserver gateway").set_defaults(handler=_cmd_gateway)
    relay = client("relay", "relay state and statistics")
    relay.add_argument("action", choices=["stats"])
    relay.set_defaults(handler=_cmd_relay)
    client("peers", "list peerings").set_defaults(handler=_cmd_peers)
    peer = client("peer", "add or remove a static peer")
    peer.add_argument("action", choices=["add", "remove"])
    peer.add_argument("uri")
    peer.set_defaults(handler=_cmd_peer)
    ping = client("ping", "round trips over the overlay to a node key")
    ping.add_argument("key")
    ping.add_argument("-c", "--count", type=int, default=0, help="stop after this many (default: until ^C)")
    ping.add_argument("-i", "--interval", type=float, default=1.0)
    ping.add_argument("-W", "--timeout", type=float, default=2.0)
    ping.set_defaults(handler=_cmd_ping)
    bench = commands.add_parser(
        "bench", help="benchmarks: 'bench sim ...' or 'bench report ...'", add_help=False
    )
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    bench.set_defaults(handler=_cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.handler(args)
    except (KeyFileError, ConfigError, CLIError) as exc:
        print(f"pinewood: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        with contextlib.suppress(Exception):
            print(file=sys.stderr)
        return 130
    return result


if __name__ == "__main__":
    raise SystemExit(main())
