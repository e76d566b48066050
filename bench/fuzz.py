"""Coverage-guided fuzzing of the wire decoders with atheris (libFuzzer).

``python -m bench.fuzz [--runs N] [--seconds S] [--json]`` gives every input to every
probe below.  A probe decodes untrusted bytes, where :class:`DecodeError` is the only
acceptable error, then checks the result: it re-encodes to the same bytes (the codec
accepts only canonical encodings), the forwarding fast path agrees with the full
decoder, and the fast path's rewrites make frames both accept.  :func:`check` is
shared with the hypothesis fuzz (``tests/router/wire/test_fuzz.py``).

libFuzzer ends its process and reports on stderr, so it runs in a child
(``--child``), seeded with the reference vectors; the parent reads its statistics
and crash artifacts.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
import types
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

from router import wire
from router.wire import SIGNATURE_SIZE, DecodeError, PublicKey, TrafficRoute, Watermark
from router.wire.coordinates import coordinate_depth, decode_coordinate_prefix
from router.wire.extension import (
    Direction,
    Neighbours,
    NeighboursGone,
    PathNotice,
    decode_extension,
    encode_extension,
    encode_path_notice,
)
from router.wire.fastpath import splice_watermark, strip_destination, watermark_bytes

Probe = Callable[[bytes], object]
Stamp = Callable[[bytes, bytes | None], wire.SignedRootStamp]
ROOT = Path(__file__).resolve().parent.parent
TARGETS = ("wire", "broken")
# Keys 3 and 1 of the reference vectors (seeds 04.. and 02..) sign their bootstrap and wakeup bodies.
BOOTSTRAP_SIGNER, WAKEUP_SIGNER = (wire.Identity.from_seed(bytes([n]) * 32).public_key for n in (4, 2))


@contextmanager
def _strict() -> Iterator[None]:
    """Inside, a DecodeError is a failure: the bytes being decoded came from the codec."""
    try:
        yield
    except DecodeError as exc:
        raise AssertionError(f"codec rejected its own output: {exc}") from exc


def _rewrites(data: bytes, route: TrafficRoute) -> tuple[bytes, bytes, Watermark, int]:
    """Set a new hop limit, then a new watermark (stripping destination coordinates
    if the frame has them); check both with the fast path and return them.  Fuzz
    inputs (at most 4,096 bytes) are far from the size where these may not fit."""
    hop = (route.hop_limit + 1) & 0xFF
    wm = Watermark(PublicKey(route.destination_key), int.from_bytes(data[-8:], "big"))
    hopped = wire.rewrite_traffic(data, route, hop_limit=hop)
    assert hopped[7] == hop and hopped[:7] + hopped[8:] == data[:7] + data[8:]
    if route.watermark_offset >= 0:
        moved = splice_watermark(data, route, watermark_bytes(wm), hop)
        assert moved == wire.rewrite_traffic(data, route, watermark=wm, hop_limit=hop)
    else:
        moved = strip_destination(data, route, wm, hop)
    new = wire.traffic_route(moved)
    assert (new.destination, new.destination_key, new.hop_limit) == (b"", route.destination_key, hop)
    assert Watermark(PublicKey(new.watermark_key), new.watermark_sequence) == wm
    return hopped, moved, wm, hop


def _frame(data: bytes) -> None:
    frame = wire.decode_frame(data)
    with _strict():
        assert wire.encode_frame(frame) == data
        if not isinstance(frame, wire.TrafficFrame):
            return
        route = wire.traffic_route(data)
        assert route.destination == wire.encode_coordinates(frame.destination)[2:]
        assert route.destination_key == frame.destination_key and route.hop_limit == frame.hop_limit
        assert Watermark(PublicKey(route.watermark_key), route.watermark_sequence) == frame.watermark
        assert data[route.source_key_offset :][: wire.PUBLIC_KEY_SIZE] == frame.source_key
        hopped, moved, wm, hop = _rewrites(data, route)
        assert wire.decode_frame(hopped) == replace(frame, hop_limit=hop)
        assert wire.decode_frame(moved) == replace(frame, destination=(), watermark=wm, hop_limit=hop)


def _route(data: bytes) -> None:
    route = wire.traffic_route(data)
    with _strict():
        _rewrites(data, route)
    wire.decode_coordinate_ports(route.destination)  # as a next-hop cache miss does


def _announcement(data: bytes, verify: bool) -> None:
    found = wire.decode_announcement(data, verify=verify)
    with _strict():
        assert wire.encode_announcement(found) == data
        assert all(len(found.signature(i)) == SIGNATURE_SIZE for i in range(len(found.hops)))
        found.is_loop_or_child_of(WAKEUP_SIGNER)
    with suppress(DecodeError):
        found.sanity_check(found.sender or b"")
    if not verify:
        found.verify_hops()


def _stamp(decode: Stamp, signer: bytes, data: bytes) -> None:
    body = decode(data, None)
    assert body.encode() == data
    decode(data, signer)


def _coordinates(data: bytes) -> None:
    ports, end = wire.decode_coordinates(data)
    assert wire.encode_coordinates(ports) == data[:end]
    body = data[2:end]
    assert coordinate_depth(body) == len(ports)  # the count a deep destination is routed on
    assert decode_coordinate_prefix(body, len(ports) // 2) == ports[: len(ports) // 2]


def _extension(data: bytes) -> None:
    message = decode_extension(data)
    with _strict():
        assert encode_extension(message) == data


def _varu64(data: bytes) -> None:
    value, end = wire.decode_varu64(data)
    assert wire.encode_varu64(value) == data[:end]


PROBES: tuple[tuple[str, Probe], ...] = (
    ("frame", _frame),
    ("traffic_route", _route),
    ("announcement", lambda b: _announcement(b, True)),
    ("announcement_unverified", lambda b: _announcement(b, False)),
    ("bootstrap", lambda b: _stamp(wire.decode_bootstrap, BOOTSTRAP_SIGNER, b)),
    ("wakeup", lambda b: _stamp(wire.decode_wakeup, WAKEUP_SIGNER, b)),
    ("handshake", wire.parse_handshake),
    ("extension", _extension),
    ("coordinates", _coordinates),
    ("coordinate_ports", wire.decode_coordinate_ports),
    ("varu64", _varu64),
)


def _unchecked_varu64(data: bytes) -> None:
    """A varu64 reader missing its truncation check: ``--target broken`` fuzzes it
    to show that a failure is caught and reported with its input."""
    if not data:
        raise DecodeError("empty")
    i = 0
    while data[i] & 0x80:  # IndexError when the last byte has its continuation bit set
        i += 1


def check(data: bytes, probes: Sequence[tuple[str, Probe]] = PROBES) -> None:
    """Run every probe on ``data``; raise AssertionError naming the probe and input."""
    for name, probe in probes:
        try:
            probe(data)
        except DecodeError:
            pass
        except Exception as exc:
            raise AssertionError(f"{name} raised {type(exc).__name__} on {data.hex()}: {exc}") from exc


def default_vectors() -> Path:
    """``$PINEWOOD_VECTORS``, else the reference vectors beside the checkout (as the tests)."""
    return Path(os.environ.get("PINEWOOD_VECTORS") or ROOT.parent / "shared/vectors/pinecone-v1.json")


def seed_corpus(path: Path) -> list[bytes]:
    """Every ``*hex`` string in the reference vectors file, as bytes; none if it is absent."""
    found: list[bytes] = []

    def collect(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        found.extend(bytes.fromhex(v) for k, v in pairs if k.endswith("hex") and isinstance(v, str))
        return dict(pairs)

    if path.is_file():
        json.loads(path.read_text(), object_pairs_hook=collect)
    return found


def own_seeds() -> list[bytes]:
    """Frames the reference never makes, so its vectors hold none: Pinewood's extensions."""
    signer = wire.Identity.from_seed(bytes([7]) * 32)
    claim = wire.RootAnnouncement.create(BOOTSTRAP_SIGNER, 5).with_hop(signer, 3).raw
    return [
        *(
            encode_path_notice(PathNotice(direction, BOOTSTRAP_SIGNER, 1 << shift))
            for direction, shift in ((Direction.TOWARDS_ORIGIN, 3), (Direction.TOWARDS_END, 40))
        ),
        encode_extension(Neighbours((claim, claim[:40]))),
        encode_extension(NeighboursGone((BOOTSTRAP_SIGNER, signer.public_key))),
    ]


def _child(target: str, flags: list[str]) -> None:
    import atheris  # noqa: PLC0415 - only the fuzzing process needs it

    # Instrument router.wire's functions in place.  instrument_imports() cannot reach
    # modules this file has already imported, and instrument_all() takes ten seconds.
    for obj in gc.get_objects():
        if isinstance(obj, types.FunctionType) and (obj.__module__ or "").startswith("router.wire"):
            atheris.instrument_func(obj)
    probes = PROBES if target == "wire" else (("unchecked_varu64", _unchecked_varu64),)

    def one_input(data: bytes) -> None:
        try:
            check(data, probes)
        except AssertionError:
            traceback.print_exc()  # atheris would print only the last exception of the chain
            raise

    atheris.Setup([sys.argv[0], *flags], one_input)
    atheris.Fuzz()


def _failure(kind: str, data: bytes | None, output: str) -> dict[str, Any]:
    start = output.find("Traceback (most recent call last):")
    if start >= 0:
        trace = output[start : output.find("=== Uncaught Python exception", start)].strip()
    else:  # a signal, a timeout, out of memory: libFuzzer's own report
        trace = "\n".join(output.splitlines()[-20:])
    return {"kind": kind, "input_hex": None if data is None else data.hex(), "traceback": trace}


def fuzz(runs: int, seconds: int | None, vectors: Path, target: str, echo: bool) -> dict[str, Any]:
    """Fuzz ``target`` in a child process; return its statistics and failures."""
    with tempfile.TemporaryDirectory(prefix="pinewood-fuzz-") as tmp:
        corpus, artifacts = Path(tmp, "corpus"), Path(tmp, "artifacts")
        corpus.mkdir()
        artifacts.mkdir()
        for i, seed in enumerate(seed_corpus(vectors) + own_seeds()):
            (corpus / f"seed-{i:03d}").write_bytes(seed)
        flags = [str(corpus), f"-runs={runs}", "-print_final_stats=1", f"-artifact_prefix={artifacts}/"]
        flags += [f"-max_total_time={seconds}"] if seconds else []
        command = [sys.executable, "-m", "bench.fuzz", "--child", "--target", target, "--", *flags]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # tracebacks in order with libFuzzer's lines
        lines = []
        start = time.perf_counter()
        out, err = subprocess.PIPE, subprocess.STDOUT
        with subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=err, errors="replace") as proc:
            for line in proc.stdout or ():
                lines.append(line)
                if echo:
                    sys.stderr.write(line)
        elapsed = time.perf_counter() - start
        output = "".join(lines)
        failures = [_failure(p.name.split("-")[0], p.read_bytes(), output) for p in artifacts.iterdir()]
        corpus_size = sum(1 for _ in corpus.iterdir())
    if proc.returncode and not failures:
        failures.append(_failure(f"exit status {proc.returncode}", None, output))
    stats = {k: int(v) for k, v in re.findall(r"stat::(\w+):\s+(\d+)", output)}
    done = re.findall(r"Done (\d+) runs in", output)
    executed = int(done[-1]) if done else stats.get("number_of_executed_units", 0)
    progress = re.findall(r"cov: (\d+) ft: (\d+) corp: \d+/", output)
    return {
        "runs": executed,
        "seconds": round(elapsed, 3),
        "execs_per_second": round(executed / elapsed, 1),
        "libfuzzer_execs_per_second": stats.get("average_exec_per_sec"),
        "failures": len(failures),
        "failed": failures,
        "atheris": version("atheris"),
        "corpus_size": corpus_size,
        "coverage": int(progress[-1][0]) if progress else None,
        "features": int(progress[-1][1]) if progress else None,
    }


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000_000, help="inputs to try (default 10,000,000)")
    parser.add_argument("--seconds", type=int, help="stop after this many seconds")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--vectors", type=Path, default=default_vectors(), help="seed vectors file")
    parser.add_argument("--target", choices=TARGETS, default="wire", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("flags", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.target, args.flags)
        return 0
    result = fuzz(args.runs, args.seconds, args.vectors, args.target, echo=not args.json)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['runs']:,} runs in {result['seconds']:.1f} s ({result['execs_per_second']:,.0f}/s), "
            f"coverage {result['coverage']}, corpus {result['corpus_size']}, failures {result['failures']}"
        )
        for failure in result["failed"]:
            print(f"{failure['kind']}: {failure['input_hex']}\n{failure['traceback']}")
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
