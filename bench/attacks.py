"""Attacks on a Pinewood node, mounted from loopback as a hostile peer or local client would.

Each attack runs as its own process, so that several can run at once and none
shares a processor with the measuring side::

    python -m bench.attacks NAME --port P --admin A [--gateway G] [--victim KEY]
                            [--seconds S] [--source 127.0.K.1]

It reads the target's root from its admin API, builds what it needs (signed
frames are made before the attack starts), prints ``ready`` on a line of its
own, attacks for ``--seconds``, and prints one JSON line: an :class:`Outcome`.
Every attacker binds its sockets to ``--source``, an address of its own on
loopback, so that what the target holds against one attack (a held-off
address, a spent handshake budget of a /24) does not fall on the next.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import selectors
import socket
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from bench.hostile_peer import (
    BATCH,
    HANDSHAKE_SIZE,
    KEEPALIVE,
    Target,
    below,
    closed_within,
    come_back,
    connect,
    deep_announcements,
    deep_traffic,
    first_announcement,
    flood,
    forged_frame,
    peer,
    signed_bootstraps,
)
from router.gateway.outbound import MAX_CLIENTS
from router.wire import (
    FULL_WATERMARK,
    Identity,
    PublicKey,
    RootAnnouncement,
    TrafficFrame,
    TreeAnnouncementFrame,
    build_handshake,
    encode_frame,
)
from router.wire.extension import (
    MAX_NEIGHBOURS,
    Direction,
    Extension,
    Neighbours,
    PathConfirmed,
    PathMoved,
    PathNotice,
    encode_neighbours,
    encode_path_notice,
    encode_path_word,
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attack achieved."""

    sent: int
    """Frames, connections or requests the target took from the attacker."""
    unit: str
    seconds: float
    closed_after_s: float | None = None
    """When the target closed the attacker's (first) peering; None: never."""
    refused: int = 0
    """Later attempts the target refused."""
    probes: int = 0
    """Requests of a good client made during the attack (local floods)..."""
    probes_served: int = 0
    """...and how many of them were answered properly and at once (within 2 s)."""
    probe_max_s: float = 0.0


# ------------------------------------------------------------------ the attacks

Attack = Callable[[Target, float], Outcome]


def forged(kind: str) -> Attack:
    """A flood of forged ``kind`` frames; then, once closed, coming back for more."""

    def attack(target: Target, seconds: float) -> Outcome:
        started = time.monotonic()
        until = started + seconds
        sock, attacker = peer(target)
        with sock:
            sent, closed_after = flood(sock, lambda n: forged_frame(kind, attacker, target, n), until)
        return Outcome(sent, "frames", seconds, closed_after, come_back(target, until))

    return attack


def traffic(target: Target, seconds: float) -> Outcome:
    """1 KiB traffic frames, half for the victim through the target and half for a
    key that is nowhere, as fast as the target takes them."""
    until = time.monotonic() + seconds
    sock, me = peer(target)
    to_victim = encode_frame(TrafficFrame((), (), PublicKey(target.victim), me.public_key, os.urandom(1024)))
    nowhere = encode_frame(
        TrafficFrame((), (), PublicKey(os.urandom(32)), me.public_key, os.urandom(1024), FULL_WATERMARK)
    )
    with sock:
        sent, closed_after = flood(sock, lambda n: to_victim if n & 1 else nowhere, until)
    return Outcome(sent, "frames", seconds, closed_after)


def path_notices(target: Target, seconds: float) -> Outcome:
    """A peer that announces path repair and floods path notices that lie: both
    directions, for the keys it knows (the root's and the victim's)
    and for random ones, with random bootstrap sequences.  None names a path
    that crosses the attacker, so each must be dropped and counted."""
    return _flood_path_words(
        target,
        seconds,
        Extension.PATH_REPAIR,
        lambda n, origin, sequence: encode_path_notice(PathNotice(Direction(n & 1), origin, sequence)),
    )


def path_confirmations(target: Target, seconds: float) -> Outcome:
    """A peer that announces quiet paths and floods confirmations and path-moved
    words that lie, for the keys it knows and for random ones, with random
    bootstrap sequences.  None names a path that crosses the attacker, so each
    must be dropped and counted, and no entry may live longer for it."""
    return _flood_path_words(
        target,
        seconds,
        Extension.PATH_REPAIR | Extension.QUIET_PATHS,
        lambda n, origin, sequence: encode_path_word(
            PathConfirmed(origin, sequence) if n & 1 else PathMoved(origin, sequence)
        ),
    )


def _flood_path_words(
    target: Target, seconds: float, extensions: int, encode: Callable[[int, PublicKey, int], bytes]
) -> Outcome:
    """A peering announcing ``extensions`` that floods 4,096 words naming paths
    by origin (the root's or the victim's key, or a random one) and a random
    bootstrap sequence, round and round."""
    until = time.monotonic() + seconds
    sock, _ = peer(target, extensions=extensions)
    known = [target.victim, target.root_key]
    frames = [
        encode(n, PublicKey(known[n % 2] if n % 3 else os.urandom(32)), int.from_bytes(os.urandom(6), "big"))
        for n in range(4096)
    ]
    with sock:
        sent, closed_after = flood(sock, lambda n: frames[n % len(frames)], until)
    return Outcome(sent, "frames", seconds, closed_after)


def lookahead_claims(target: Target, seconds: float) -> Outcome:
    """A peer that announces lookahead and floods neighbour claims: 64 made-up
    neighbours below itself, under the target's own root and validly signed
    (each a hop of a fresh key on the announcement the target sent it), their
    ports changed every round so that each claim is new and must be verified;
    and as many under roots of their own.  The target must keep to its limits
    and its signature budget, and keep the peering."""
    until = time.monotonic() + seconds
    me = below(target.root_key)
    sock, _ = peer(target, me, extensions=Extension.LOOKAHEAD)
    to_me = first_announcement(sock)
    fakes = [Identity.generate() for _ in range(MAX_NEIGHBOURS)]
    frames = []
    for n in range(24):
        mine = to_me.with_hop(me, 1 + n)
        frames.append(encode_neighbours(Neighbours(tuple(mine.with_hop(f, 1).raw for f in fakes))))
        elsewhere = RootAnnouncement.create(me.public_key, 1 + n).with_hop(me, 1)
        frames.append(encode_neighbours(Neighbours(tuple(elsewhere.with_hop(f, 1).raw for f in fakes))))
    with sock:
        sent, closed_after = flood(sock, lambda n: frames[n % len(frames)], until)
    return Outcome(sent, "frames", seconds, closed_after)


def replayed(frames: list[bytes], identity: Identity | None = None) -> Attack:
    """A flood of ``frames``, made beforehand, over and over (by ``identity``)."""

    def attack(target: Target, seconds: float) -> Outcome:
        until = time.monotonic() + seconds
        sock, _ = peer(target, identity)
        with sock:
            sent, closed_after = flood(sock, lambda n: frames[n % len(frames)], until)
        return Outcome(sent, "frames", seconds, closed_after)

    return attack


def silent_connections(target: Target, seconds: float, held: int = 300) -> Outcome:
    """``held`` connections that never send a byte, each reopened when the target closes it."""
    until = time.monotonic() + seconds
    selector = selectors.DefaultSelector()
    opened = 0

    def open_one() -> None:
        nonlocal opened
        with contextlib.suppress(OSError):
            sock = connect(target.port, target.source, timeout=2)
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
            opened += 1

    for _ in range(held):
        open_one()
    while time.monotonic() < until:
        for key, _ in selector.select(0.2):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            data = b"x"
            with contextlib.suppress(OSError):
                data = sock.recv(4096)
            if not data:
                selector.unregister(sock)
                sock.close()
                open_one()
    still_open = list(selector.get_map().values())
    for key in still_open:
        selector.unregister(key.fileobj)
        key.fileobj.close()  # type: ignore[union-attr]
    # ``refused``: connections the target closed (or refused at once).
    return Outcome(opened, "connections", seconds, refused=opened - len(still_open))


def connect_close(target: Target, seconds: float, per_s: float = 2000.0) -> Outcome:
    """Bare connects, closed at once, at up to ``per_s`` a second."""
    started = time.monotonic()
    until = started + seconds
    made = 0
    while (now := time.monotonic()) < until:
        if made > (now - started) * per_s:
            time.sleep(0.001)
            continue
        with contextlib.suppress(OSError), connect(target.port, target.source, timeout=2):
            made += 1
    return Outcome(made, "connections", seconds)


def garbage_handshakes(target: Target, seconds: float) -> Outcome:
    """Connections that send 104 random bytes, or a handshake of another version,
    one after another; each must be closed by the target."""
    started = time.monotonic()
    until = started + seconds
    made = closed = 0
    first_closed: float | None = None
    while time.monotonic() < until:
        me = Identity.generate()
        if made & 1:
            head = bytes((2, 0, 0, 0)) + (0x3B).to_bytes(4, "big") + me.public_key
            data = head + me.sign(head)
        else:
            data = os.urandom(HANDSHAKE_SIZE)
        with contextlib.suppress(OSError), connect(target.port, target.source, timeout=2) as sock:
            made += 1
            sock.sendall(data)
            if closed_within(sock, 3.0) is not None:
                closed += 1
                if first_closed is None:
                    first_closed = time.monotonic() - started
    return Outcome(made, "connections", seconds, first_closed, refused=closed)


def slowloris(target: Target, seconds: float, held: int = 64) -> Outcome:
    """``held`` connections each trickling a handshake a byte every half second,
    reopened when the target closes them."""
    until = time.monotonic() + seconds
    conns: dict[socket.socket, bytes] = {}
    opened = cut = 0
    first_cut: float | None = None
    started = time.monotonic()

    def open_one() -> None:
        nonlocal opened
        with contextlib.suppress(OSError):
            sock = connect(target.port, target.source, timeout=2)
            sock.setblocking(False)
            conns[sock] = build_handshake(Identity.generate())
            opened += 1

    for _ in range(held):
        open_one()
    while time.monotonic() < until:
        for sock in list(conns):
            rest = conns[sock]
            try:
                if sock.recv(4096) == b"":
                    raise ConnectionResetError
            except BlockingIOError:
                pass
            except OSError:
                del conns[sock]
                sock.close()
                cut += 1
                first_cut = first_cut if first_cut is not None else time.monotonic() - started
                open_one()
                continue
            with contextlib.suppress(OSError):
                sock.send(rest[:1])
            conns[sock] = rest[1:] or rest  # never completes: starts over if it ever ran out
        time.sleep(0.5)
    for sock in conns:
        sock.close()
    return Outcome(opened, "connections", seconds, first_cut, refused=cut)


def never_reads(target: Target, seconds: float) -> Outcome:
    """One peer announces itself and then never reads; another floods it with
    traffic through the target.  The sink must be closed, its feeder not."""
    started = time.monotonic()
    until = started + seconds
    sink, sink_id = peer(target)
    source, source_id = peer(target)
    with sink, source:
        sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        own = RootAnnouncement.create(sink_id.public_key, 1).with_hop(sink_id, 1)
        sink.sendall(encode_frame(TreeAnnouncementFrame(own.raw)))
        frame = encode_frame(TrafficFrame((), (), sink_id.public_key, source_id.public_key, os.urandom(1024)))
        source.setblocking(False)
        sink.setblocking(False)
        batch = frame * BATCH
        pending = memoryview(batch)  # never split a frame: the rest goes next time
        sent = 0
        sink_closed: float | None = None
        source_closed = False
        next_keepalive = 0.0
        while (now := time.monotonic()) < until:
            with contextlib.suppress(BlockingIOError):
                wrote = source.send(pending)
                sent += wrote
                pending = pending[wrote:] if wrote < len(pending) else memoryview(batch)
            with contextlib.suppress(BlockingIOError):
                if source.recv(65536) == b"":
                    source_closed = True
                    break
            if sink_closed is None and now >= next_keepalive:
                next_keepalive = now + 1.0
                try:
                    sink.send(KEEPALIVE)  # the sink talks but never reads
                except OSError:
                    sink_closed = now - started
            time.sleep(0.005)
    # ``refused`` here counts feeders wrongly closed: it must stay 0.
    return Outcome(sent // len(frame), "frames", seconds, sink_closed, refused=int(source_closed))


def idle_flood(port: int, held: int, probe: Callable[[], bool], target: Target) -> Attack:
    """``held`` idle connections to a local service, opened beforehand; the attack
    is a good client's requests (``probe``: true when properly answered) while
    they are held."""
    conns = []
    for _ in range(held):
        with contextlib.suppress(OSError):
            conns.append(connect(port, target.source, timeout=5))

    def attack(target: Target, seconds: float) -> Outcome:
        until = time.monotonic() + seconds
        probes = served = 0
        worst = 0.0
        while time.monotonic() < until:
            started = time.monotonic()
            ok = False
            with contextlib.suppress(OSError, ValueError, IndexError):
                ok = probe()
            took = time.monotonic() - started
            probes += 1
            served += ok and took < 2.0
            worst = max(worst, took)
            time.sleep(0.2)
        for sock in conns:
            sock.close()
        return Outcome(
            len(conns), "connections", seconds, probes=probes, probes_served=served, probe_max_s=worst
        )

    return attack


def gateway_idle(target: Target) -> Attack:
    assert target.gateway_port is not None, "the target runs no gateway"
    gateway = target.gateway_port

    def probe() -> bool:
        # A CONNECT for a name that is not a key: the gateway must answer 403 at once.
        with connect(gateway, target.source) as sock:
            sock.sendall(b"CONNECT matrix.org:443 HTTP/1.1\r\nHost: matrix.org:443\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        return data.split()[1] == b"403"

    return idle_flood(gateway, MAX_CLIENTS + 100, probe, target)


def admin_idle(target: Target) -> Attack:
    def probe() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{target.admin_port}/status", timeout=5) as answer:
            return bool(json.loads(answer.read())["key"])

    return idle_flood(target.admin_port, 200, probe, target)


def prepare(name: str, target: Target, seconds: float) -> Attack:
    """The attack called ``name``, with whatever it sends made in advance."""
    if name.startswith("forged-"):
        return forged(name.removeprefix("forged-"))
    if name == "valid-bootstraps":
        # Twice what the per-peer budget would let through (1,600 a second).
        return replayed(signed_bootstraps(target, min(200_000, int(seconds * 3200))))
    if name == "deep-announcements":
        attacker = below(target.root_key)
        return replayed(deep_announcements(attacker, target, 48), attacker)
    if name == "gateway-idle":
        return gateway_idle(target)
    if name == "admin-idle":
        return admin_idle(target)
    if name == "deep-coordinates":
        return replayed(deep_traffic(Identity.generate(), target, 32))
    return SIMPLE[name]


SIMPLE: dict[str, Attack] = {
    "traffic": traffic,
    "silent-connections": silent_connections,
    "connect-close": connect_close,
    "garbage-handshakes": garbage_handshakes,
    "slowloris": slowloris,
    "never-reads": never_reads,
    "path-notices": path_notices,
    "path-confirmations": path_confirmations,
    "lookahead-claims": lookahead_claims,
}
NAMES = (
    "forged-bootstrap",
    "forged-announcement",
    "forged-wakeup",
    "valid-bootstraps",
    "deep-announcements",
    "deep-coordinates",
    *SIMPLE,
    "gateway-idle",
    "admin-idle",
)


def target_of(args: argparse.Namespace) -> Target:
    with urllib.request.urlopen(f"http://127.0.0.1:{args.admin}/status", timeout=10) as answer:
        status: dict[str, Any] = json.loads(answer.read())
    return Target(
        args.port,
        args.admin,
        args.gateway,
        bytes.fromhex(args.victim) if args.victim else bytes(32),
        bytes.fromhex(status["root"]["key"]),
        status["root"]["sequence"],
        args.source,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.attacks", description=__doc__)
    parser.add_argument("name", choices=NAMES)
    parser.add_argument("--port", type=int, required=True, help="the target's TCP peering port")
    parser.add_argument("--admin", type=int, required=True, help="the target's admin API port")
    parser.add_argument("--gateway", type=int, default=None, help="the target's gateway port")
    parser.add_argument("--victim", default="", help="hex key of a peer of the target")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--source", default="127.0.0.1", help="loopback address to attack from")
    args = parser.parse_args(argv)
    target = target_of(args)
    attack = prepare(args.name, target, args.seconds)
    print("ready", flush=True)
    outcome = attack(target, args.seconds)
    print(json.dumps(asdict(outcome)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
