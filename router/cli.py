"""The ``pinewood`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from router import __version__
from router.keyfile import KeyFileError, default_data_dir, load_or_create_identity, write_key_file
from router.wire.keys import Identity


def _cmd_run(args: argparse.Namespace) -> int:
    key_path = Path(args.key_file) if args.key_file else default_data_dir() / "node.key"
    identity, source = load_or_create_identity(key_path)
    print(f"pinewood {__version__}")
    print(f"node key: {identity.public_key.hex()}")
    print(f"identity: {source}")
    print("the routing daemon is not built yet; exiting")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pinewood", description="Pinecone-compatible overlay router")
    parser.add_argument("--version", action="version", version=f"pinewood {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="start the node (for now: print its identity)")
    run.add_argument("--key-file", help="private key file (default: DATA_DIR/node.key)")
    run.set_defaults(handler=_cmd_run)
    keygen = commands.add_parser("keygen", help="create a new private key file")
    keygen.add_argument("output", help="file to create (mode 0600), or '-' to print the seed")
    keygen.set_defaults(handler=_cmd_keygen)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.handler(args)
    except KeyFileError as exc:
        print(f"pinewood: {exc}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    raise SystemExit(main())
