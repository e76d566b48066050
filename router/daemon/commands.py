"""The command line's client commands: each asks the node's admin API and prints
the answer for a person (or, with ``--json``, as the API gave it)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from router.daemon.admin_client import AdminClient, CLIError, ExitCode
from router.daemon.config import load_config_sources
from router.daemon.settings import SETTINGS, toml_value

PEER_WAIT_POLL_S = 0.2


def client(args: argparse.Namespace) -> AdminClient:
    return AdminClient.from_flag(args.admin)


def _print_json(value: object) -> int:
    print(json.dumps(value, indent=1))
    return ExitCode.OK


def duration(seconds: float | None) -> str:
    """``3d 4h``, ``2h 05m``, ``4m 09s``, ``12.3s``: the two largest units."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s"


def size(count: int) -> str:
    """Bytes in binary units: ``512 B``, ``1.5 KiB``, ``3.2 MiB``."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"  # not reached


def milliseconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} ms" if value < 10 else f"{value:.0f} ms"


# ------------------------------------------------------------------ status and peers


def cmd_status(args: argparse.Namespace) -> int:
    status = client(args).call("GET", "/status")
    if args.json:
        return _print_json(status)
    parent = status["parent"]
    root = status["root"]
    is_root = root["key"] == status["key"]
    peers = client(args).call("GET", "/peers")
    outbound = sum(1 for p in peers if p.get("direction") == "outbound")
    inbound = sum(1 for p in peers if p.get("direction") == "inbound")
    waiting = sum(1 for p in peers if "port" not in p)
    print(f"node         {status['key']}")
    build = f" ({status['build']})" if status.get("build") else ""
    print(f"version      {status.get('version', '?')}{build}")
    if status.get("quic_engine"):
        print(f"QUIC engine  {status['quic_engine']} (quic:// peerings)")
    print(f"uptime       {duration(status.get('uptime_s'))}")
    print(f"root         {root['key']} (sequence {root['sequence']}){' (this node)' if is_root else ''}")
    coordinates = " ".join(str(c) for c in status["coordinates"])
    print(f"coordinates  [{coordinates}] (depth {status.get('depth', len(status['coordinates']))})")
    parent_text = f"{parent['key']} on port {parent['port']}" if parent else "none (this node is root)"
    print(f"parent       {parent_text}")
    print(f"snake        descending {status['descending'] or 'none'}")
    peer_text = f"{status['peers']} ({outbound} outbound, {inbound} inbound)"
    if waiting:
        peer_text += f"; {waiting} configured not connected"
    print(f"peers        {peer_text}")
    print(f"listening    {', '.join(status['listen']) or 'nowhere'}")
    t = status["traffic"]
    print(f"traffic      forwarded {t['forwarded']}, delivered {t['delivered']}, sent {t['sent']}")
    if status["drops"]:
        print("drops        " + ", ".join(f"{k}: {v}" for k, v in sorted(status["drops"].items())))
    return ExitCode.OK


def cmd_peers(args: argparse.Namespace) -> int:
    peers = client(args).call("GET", "/peers")
    if args.json:
        return _print_json(peers)
    if not peers:
        print("no peers (add one with: pinewood peer add tcp://HOST:PORT)")
        return ExitCode.OK
    header = (
        f"{'port':>4}  {'key':16}  {'dir':3}  {'type':9}  {'uptime':>8}  {'rtt':>8}  "
        f"{'bytes in/out':>21}  {'frames in/out':>17}  {'queue':>5}  {'wait p99':>8}  {'drops':>5}  uri"
    )
    print(header)
    for peer in peers:
        if "port" not in peer:
            error = peer["last_error"] or "connecting"
            print(f"{'-':>4}  {'(not connected)':16}  out  {'':9}  {'':>8}  {'':>8}  {'':>21}  ", end="")
            print(
                f"{'':>17}  {'':>5}  {'':>8}  {'':>5}  {peer['uri']}  ({error}; attempt {peer['attempts']})"
            )
            continue
        byte_counts = f"{size(peer['bytes_in'])}/{size(peer['bytes_out'])}"
        frames = f"{peer['frames_in']}/{peer['frames_out']}"
        notes = [n for n in ("parent" if peer["is_parent"] else "", peer.get("static") or "") if n]
        notes += peer.get("extensions") or []
        direction = "in" if peer.get("direction") == "inbound" else "out"
        print(
            f"{peer['port']:>4}  {(peer['key'] or '?')[:16]:16}  {direction:3}  {peer['link_type']:9}  "
            f"{duration(peer.get('uptime_s')):>8}  {milliseconds(peer.get('rtt_ms')):>8}  "
            f"{byte_counts:>21}  {frames:>17}  {peer['queue_depth']:>5}  "
            f"{milliseconds(peer.get('queue_wait_p99_ms')):>8}  {peer['dropped']:>5}  "
            f"{peer['uri']}" + (f"  ({', '.join(notes)})" if notes else "")
        )
    return ExitCode.OK


def cmd_peer(args: argparse.Namespace) -> int:
    admin = client(args)
    if args.action == "remove":
        removed = admin.call("DELETE", f"/peers?uri={quote(args.uri, safe='')}")
        if args.json:
            return _print_json(removed)
        print(f"removed {removed['removed']}")
        if removed["source"] == "config":
            print(
                "note: it is in the configuration (the peers setting), so it comes back at the next "
                "start unless it is taken out there",
                file=sys.stderr,
            )
        return ExitCode.OK
    added = admin.call("POST", "/peers", {"uri": args.uri, "save": not args.temporary})
    uri = added["added"]
    kept = {
        "saved": "saved: it is redialled after a restart",
        "temporary": "for this run only",
        "config": "it is in the configuration already",
    }.get(added["source"], "")
    if args.wait == 0:
        if args.json:
            return _print_json(added)
        print(f"added {uri} ({kept})")
        return ExitCode.OK
    row = _wait_for_peer(admin, uri, args.wait)
    if row is not None and "port" in row:
        if args.json:
            return _print_json({**added, "peer": row})
        print(f"peered with {row['key']} over {row['link_type']} ({kept})")
        return ExitCode.OK
    if args.json:
        _print_json({**added, "peer": row})
        return ExitCode.FAILED
    error = row["last_error"] if row is not None and row.get("last_error") else None
    outcome = error or f"not connected within {args.wait:g} s"
    if error is not None and error.startswith("gave up"):
        raise CLIError(f"{uri}: {outcome} (pinewood peer remove {uri} to drop it)")
    raise CLIError(
        f"{uri}: {outcome}; it stays configured ({kept}) and is retried with backoff "
        f"(pinewood peer remove {uri} to drop it)"
    )


def _wait_for_peer(admin: AdminClient, uri: str, wait_s: float) -> dict[str, Any] | None:
    """The peer's row once it is connected or its first attempt has failed, or at
    the end of ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while True:
        rows: list[dict[str, Any]] = admin.call("GET", "/peers")
        row = next((p for p in rows if p.get("uri") == uri), None)
        if row is None or "port" in row or row.get("last_error"):
            return row  # connected, failed, or removed meanwhile
        if time.monotonic() >= deadline:
            return row
        time.sleep(PEER_WAIT_POLL_S)


# ------------------------------------------------------------------ configuration


def cmd_config(args: argparse.Namespace) -> int:
    if args.local or args.config:
        config, sources = load_config_sources(Path(args.config) if args.config else None, flags={})
        rows: list[dict[str, Any]] = [
            {"name": s.name, "value": _json_value(getattr(config, s.name)), "source": sources[s.name]}
            for s in SETTINGS
        ]
    else:
        rows = client(args).call("GET", "/config")
    if args.json:
        return _print_json(rows)
    width = max(len(r["name"]) for r in rows)
    for row in rows:
        value = row["value"]
        text = toml_value(tuple(value) if isinstance(value, list) else value)
        print(f"{row['name']:<{width}} = {text:<40}  # {row['source']}")
    return ExitCode.OK


def _json_value(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


# ------------------------------------------------------------------ ping


def cmd_ping(args: argparse.Namespace) -> int:
    admin = client(args)
    key = admin.resolve_key(args.key)
    rtts: list[float] = []
    sent = 0
    short = key[:16]
    if not args.json:
        print(f"PING {key} over the overlay", flush=True)
    try:
        while args.count == 0 or sent < args.count:
            if sent:
                time.sleep(args.interval)
            sent += 1
            result = admin.call("POST", "/ping", {"key": key, "timeout": args.timeout}, args.timeout + 10)
            rtt = result["rtt_ms"]
            if rtt is not None:
                rtts.append(rtt)
            if args.json:
                print(json.dumps({"seq": sent, "rtt_ms": rtt}), flush=True)
            elif rtt is None:
                print(f"no answer from {short}: seq={sent}", flush=True)
            else:
                print(f"answer from {short}: seq={sent} time={rtt:.3f} ms", flush=True)
    except KeyboardInterrupt:
        pass
    loss = 100.0 * (sent - len(rtts)) / sent if sent else 0.0
    if not args.json:
        print(f"--- {short} ping statistics ---")
        print(f"{sent} sent, {len(rtts)} received, {loss:.0f}% loss")
        if rtts:
            import statistics  # noqa: PLC0415  (a ping summary only: fractions, decimal)

            spread = statistics.pstdev(rtts)
            avg = statistics.fmean(rtts)
            print(f"rtt min/avg/max/mdev = {min(rtts):.3f}/{avg:.3f}/{max(rtts):.3f}/{spread:.3f} ms")
    return ExitCode.OK if rtts else ExitCode.FAILED


# ------------------------------------------------------------------ sessions, gateway, relay


def cmd_sessions(args: argparse.Namespace) -> int:
    answer = client(args).call("GET", "/sessions")
    if args.json:
        return _print_json(answer)
    if not answer["sessions"]:
        print("no sessions")
    for s in answer["sessions"]:
        state = "closing" if s["closing"] else "up" if s["established"] else "connecting"
        rtt = f"{s['rtt_ms']} ms" if s["rtt_ms"] is not None else "-"
        print(
            f"{s['key']}  {s['protocol'] or '?':<8} {s['direction']:<8} {state:<10} "
            f"streams {s['streams']:<4} out {size(s['bytes_sent'])}  in {size(s['bytes_received'])}  "
            f"rtt {rtt}"
        )
    return ExitCode.OK


def cmd_gateway(args: argparse.Namespace) -> int:
    answer = client(args).call("GET", "/gateway")
    if args.json:
        return _print_json(answer)
    print(f"server name      {answer['server_name']}")
    print(f"hex server name  {answer['hex_server_name']}")
    print(f"federation proxy {answer.get('proxy') or 'off'}")
    if "ca_certificate" in answer:
        print(f"CA certificate   {answer['ca_certificate']}")
    print(f"homeserver       {answer.get('homeserver') or 'off (no inbound federation)'}")
    if busiest := answer.get("inbound_busiest_node_requests"):
        print(f"busiest node     {busiest['in_1s']} requests in 1 s, {busiest['in_10s']} in 10 s")
    for side in ("proxy_counters", "inbound_counters"):
        for event, count in sorted(answer.get(side, {}).items()):
            print(f"  {side.split('_')[0]:<8} {event}: {count}")
    return ExitCode.OK


def cmd_relay(args: argparse.Namespace) -> int:
    answer = client(args).call("GET", "/relay")
    if args.json:
        return _print_json(answer)
    print(f"our relays       {', '.join(answer['relays']) or 'none'}")
    print(f"registered on    {', '.join(answer['registered']) or 'none'}")
    print(f"record published {'yes' if answer['record_published'] else 'no'}")
    print(f"records held     {answer['records_held']} (for nodes near us in key space)")
    for event, count in sorted(answer["client_counters"].items()):
        print(f"  client  {event}: {count}")
    if answer["serving"]:
        store = answer["store"]
        counts = f"{store['mailboxes']} mailboxes, {store['envelopes']} envelopes, {size(store['bytes'])}"
        print(f"serving          {counts}")
        for event, count in sorted(answer["service_counters"].items()):
            print(f"  service {event}: {count}")
    else:
        print("serving          no (relay_enable is off)")
    return ExitCode.OK


__all__ = [
    "cmd_config",
    "cmd_gateway",
    "cmd_peer",
    "cmd_peers",
    "cmd_ping",
    "cmd_relay",
    "cmd_sessions",
    "cmd_status",
]
