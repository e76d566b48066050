"""The ``pinewood`` command line: the daemon, and a client of its admin API."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from router import __version__
from router.daemon import commands as cmds
from router.daemon.admin_client import AdminClient, CLIError, ExitCode
from router.daemon.config import ConfigError, load_config_sources
from router.daemon.keyfile import (
    SEED_ENV,
    KeyFileError,
    load_key_file,
    load_or_create_identity,
    write_key_file,
)
from router.daemon.settings import DEFAULT_ADMIN, add_flags, env_name, flag_values
from router.matrix.names import server_name
from router.wire.keys import Identity

HELP_WIDTH_DEFAULT = 80


def help_width() -> int:
    """Columns for help text, as argparse would find them: ``COLUMNS``, else the
    terminal on standard output, else 80; less a margin of two."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno() if sys.__stdout__ else 1).columns
        except (OSError, ValueError):
            columns = 0
    return (columns or HELP_WIDTH_DEFAULT) - 2


class Parser(argparse.ArgumentParser):
    """argparse's parser, with help wrapped to a width found without ``shutil``:
    argparse loads it (and with it zlib, bz2 and lzma, half a MiB resident) only
    to ask the terminal's width, which the node, once running, never needs."""

    def _get_formatter(self) -> argparse.HelpFormatter:
        return self.formatter_class(prog=self.prog, width=help_width())  # type: ignore[call-arg]


def seconds(*, zero: bool) -> Callable[[str], float]:
    """An argparse type: a finite number of seconds, above 0 (or 0 too if ``zero``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
        if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
            floor = "0 or more" if zero else "more than 0"
            raise argparse.ArgumentTypeError(f"{text!r}: give a number of seconds, {floor}")
        return value

    return parse


def count(text: str) -> int:
    """An argparse type: a whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give 0 or more")
    return value


# ------------------------------------------------------------------ run


def _cmd_run(args: argparse.Namespace) -> int:
    # The node's modules load only for ``run``: the client commands (ping,
    # status, ...) start in a fraction of the time without them.
    from router.daemon.serve import run  # noqa: PLC0415

    return run(args)


def _cmd_keygen(args: argparse.Namespace) -> int:
    identity = Identity.generate()
    if args.output == "-":
        print(identity.seed.hex())
        print(f"public key: {identity.public_key.hex()}", file=sys.stderr)
        return 0
    write_key_file(Path(args.output), identity)
    print(identity.public_key.hex())
    return 0


def _cmd_server_name(args: argparse.Namespace) -> int:
    config, _ = load_config_sources(Path(args.config) if args.config else None, flags=flag_values(args))
    path = config.key_path
    if args.create_key:
        identity, source = load_or_create_identity(path)
        if source.endswith("(new)"):
            print(f"created a new node key in {path}", file=sys.stderr)
    elif os.environ.get(SEED_ENV):
        identity, _ = load_or_create_identity(path)
    else:
        try:
            identity = load_key_file(path)
        except KeyFileError as exc:
            if path.exists():
                raise
            raise CLIError(
                f"no node key yet at {path}: start the node once (it creates its key), or run this "
                "again with --create-key (as the user the node runs as)",
                ExitCode.FAILED,
            ) from exc
    key = bytes(identity.public_key)
    print(server_name(key, config.server_name_suffix))
    hex_name = key.hex() + config.server_name_suffix
    print(f"(the same node as {hex_name}; use the form above for Synapse)", file=sys.stderr)
    return 0


# ------------------------------------------------------------------ parser


def _cmd_bench(args: argparse.Namespace) -> int:
    try:  # imported only here: plotting libraries are slow to load
        entry = importlib.import_module("bench.entry")
    except ImportError as exc:  # installed without the benchmarks
        raise CLIError(f"the benchmarks are not installed: {exc}") from None
    result: int = entry.main(args.bench_args)
    return result


EPILOG = """exit status: 0 done; 1 failed (the node refused, no answer, peer unreachable);
2 bad arguments or configuration; 3 the node's admin API cannot be reached"""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="pinewood",
        description="Pinecone-compatible overlay router",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pinewood {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the node", description="Run the node in the foreground.")
    run.add_argument("--config", metavar="FILE", help="TOML configuration file (see docs/settings.md)")
    add_flags(run)  # every setting, from the table in router.daemon.settings
    run.set_defaults(handler=_cmd_run)

    keygen = commands.add_parser("keygen", help="create a new private key file")
    keygen.add_argument("output", help="file to create (mode 0600), or '-' to print the seed")
    keygen.set_defaults(handler=_cmd_keygen)

    naming = commands.add_parser(
        "server-name",
        help="print the homeserver server name for this node's key",
        description="Print the server name a homeserver beside this node must use.",
    )
    naming.add_argument("--config", metavar="FILE", help="TOML configuration file")
    naming.add_argument("--create-key", action="store_true", help="create the node key if there is none yet")
    add_flags(naming, ("data_dir", "key_file", "server_name_suffix"))
    naming.set_defaults(handler=_cmd_server_name)

    def client(name: str, help_text: str, json_help: str = "print the node's answer as JSON") -> Parser:
        description = help_text[0].upper() + help_text[1:] + "."
        sub = commands.add_parser(name, help=help_text, description=description)
        sub.add_argument(
            "--admin",
            metavar="HOST:PORT",
            help=f"the node's admin API (default: ${env_name('admin')}, else {DEFAULT_ADMIN})",
        )
        sub.add_argument("--json", action="store_true", help=json_help)
        return sub

    watched = (
        ("status", "show the node: key, version, uptime, tree position, snake, peers", cmds.cmd_status),
        ("peers", "list peerings: direction, link, uptime, round trip, bytes, queue", cmds.cmd_peers),
        ("sessions", "list end-to-end sessions", cmds.cmd_sessions),
    )
    for name, help_text, handler in watched:
        sub = client(name, help_text)
        sub.add_argument(
            "-w",
            "--watch",
            type=seconds(zero=False),
            metavar="SECONDS",
            help="redraw every SECONDS until interrupted",
        )
        sub.set_defaults(handler=handler)
    config = client("config", "show every setting's effective value and where it came from")
    config.add_argument(
        "--local",
        action="store_true",
        help="what 'pinewood run' would use here (environment and --config), without asking a node",
    )
    config.add_argument("--config", metavar="FILE", help="with --local: the TOML file to read")
    config.set_defaults(handler=cmds.cmd_config)
    client("gateway", "show the homeserver gateway").set_defaults(handler=cmds.cmd_gateway)
    relay = client("relay", "relay state and statistics")
    relay.add_argument("action", choices=["stats"], help="what to show")
    relay.set_defaults(handler=cmds.cmd_relay)
    peer = client(
        "peer", "add or remove a static peer", "print the node's answer and the peer's state as JSON"
    )
    peer.add_argument(
        "action", choices=["add", "remove"], help="add: keep connected; remove: drop and forget"
    )
    peer.add_argument(
        "uri", help="tcp://HOST:PORT, tls://, quic://, ws:// or wss://; ?key=HEX pins the key it must prove"
    )
    peer.add_argument(
        "--temporary", action="store_true", help="add: for this run only (by default it is saved)"
    )
    peer.add_argument(
        "--wait",
        type=seconds(zero=True),
        default=10.0,
        metavar="SECONDS",
        help="add: how long to wait for the peering before giving up (default 10; 0: do not wait)",
    )
    peer.set_defaults(handler=cmds.cmd_peer)
    ping = client(
        "ping", "round trips over the overlay to a node key", "one JSON object per line: seq and rtt_ms"
    )
    ping.add_argument(
        "key", help="node key: 64 hex characters, a server name, or a hex prefix of a key the node knows"
    )
    ping.add_argument("-c", "--count", type=count, default=0, help="stop after this many (default: until ^C)")
    ping.add_argument(
        "-i",
        "--interval",
        type=seconds(zero=True),
        default=1.0,
        metavar="SECONDS",
        help="between pings (default 1)",
    )
    ping.add_argument(
        "-W",
        "--timeout",
        type=seconds(zero=False),
        default=2.0,
        metavar="SECONDS",
        help="wait this long for each answer (default 2)",
    )
    ping.set_defaults(handler=cmds.cmd_ping)
    bench = commands.add_parser(
        "bench", help="benchmarks: 'bench sim ...' or 'bench report ...'", add_help=False
    )
    bench.add_argument("bench_args", nargs=argparse.REMAINDER, help="the benchmark's own arguments")
    bench.set_defaults(handler=_cmd_bench)
    return parser


def _watch(args: argparse.Namespace, handler: Callable[[argparse.Namespace], int]) -> int:
    """Run ``handler`` every ``args.watch`` seconds, redrawing the screen on a terminal."""
    clear = sys.stdout.isatty()
    while True:
        if clear:
            sys.stdout.write("\x1b[H\x1b[2J")
        print(time.strftime("%H:%M:%S"), f"every {args.watch:g} s (^C to stop)")
        handler(args)
        sys.stdout.flush()
        time.sleep(args.watch)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "watch", None) is not None:
            return _watch(args, args.handler)
        result: int = args.handler(args)
        sys.stdout.flush()
    except (KeyFileError, ConfigError) as exc:
        print(f"pinewood: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except CLIError as exc:
        print(f"pinewood: {exc}", file=sys.stderr)
        return exc.code
    except (KeyError, TypeError) as exc:
        if not hasattr(args, "admin"):
            raise
        # A client command met an answer of a shape it does not know.
        address = AdminClient.from_flag(args.admin).address
        print(
            f"pinewood: unexpected answer from {address} ({type(exc).__name__}: {exc}): "
            "is it a Pinewood admin API of this version?",
            file=sys.stderr,
        )
        return ExitCode.FAILED
    except KeyboardInterrupt:
        with contextlib.suppress(Exception):
            print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`pinewood ping KEY | head`): stop quietly, and keep
        # the interpreter from complaining as it flushes stdout at exit.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.CLOSED_PIPE
    return result


if __name__ == "__main__":
    raise SystemExit(main())
