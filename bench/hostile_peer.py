"""What a hostile peer of a Pinewood node is made of: sockets bound to an address
of its own on loopback, the peering handshake, floods that never split a frame,
and frames made to cost the node as much as they can (forged signatures,
genuine signatures by the thousand, the deepest announcements and coordinates
a frame can hold).  The attacks themselves: :mod:`bench.attacks`.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from router.routing.constants import MAX_ANNOUNCEMENT_HOPS
from router.wire import (
    FULL_WATERMARK,
    BootstrapFrame,
    Identity,
    PublicKey,
    RootAnnouncement,
    TrafficFrame,
    TreeAnnouncementFrame,
    WakeupBroadcastFrame,
    build_handshake,
    decode_announcement,
    encode_frame,
    parse_handshake,
    sign_bootstrap,
    sign_wakeup,
)

HANDSHAKE_SIZE = 104
BATCH = 32
"""Frames written per ``sendall``."""
DEEP_ANNOUNCEMENT_HOPS = MAX_ANNOUNCEMENT_HOPS
"""As deep as a node takes: the most each announcement can cost it (deeper ones are dropped unread)."""
DEEP_COORDINATE_PORTS = 60000
"""Ports (one byte each) of deep destination coordinates: a frame at the size limit."""
KEEPALIVE = bytes.fromhex("70696e6500000000000a")


@dataclass(frozen=True, slots=True)
class Target:
    """The node under attack, and what an attacker learns of it beforehand."""

    port: int
    admin_port: int
    gateway_port: int | None
    victim: bytes
    """A key that peers with the target (traffic is aimed at it)."""
    root_key: bytes
    root_sequence: int
    source: str
    """The loopback address the attacker's sockets are bound to."""


# ------------------------------------------------------------------ sockets


def connect(port: int, source: str = "127.0.0.1", timeout: float = 10.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))


def handshake_as(sock: socket.socket, identity: Identity, extensions: int = 0) -> PublicKey:
    """Send our handshake (announcing ``extensions``) and read the target's; its key."""
    sock.sendall(build_handshake(identity, extensions))
    data = b""
    while len(data) < HANDSHAKE_SIZE:
        chunk = sock.recv(HANDSHAKE_SIZE - len(data))
        if not chunk:
            raise ConnectionResetError("closed during the handshake")
        data += chunk
    return parse_handshake(data).public_key


def closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the other side closed the connection (reading all it sends), or None."""
    started = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - started < seconds:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic() - started
    return None


def below(key: bytes) -> Identity:
    """A fresh identity whose key sorts below ``key``: its own announcements never
    make it anyone's root, so an attack cannot move the tree under the good peers."""
    while True:
        identity = Identity.generate()
        if identity.public_key < key:
            return identity


def peer(
    target: Target, identity: Identity | None = None, extensions: int = 0
) -> tuple[socket.socket, Identity]:
    """A peering with the target, announcing ``extensions`` (raises OSError if it is refused)."""
    identity = identity or below(target.root_key)
    sock = connect(target.port, target.source)
    try:
        handshake_as(sock, identity, extensions)
    except OSError:
        sock.close()
        raise
    return sock, identity


def flood(sock: socket.socket, frame: Callable[[int], bytes], until: float) -> tuple[int, float | None]:
    """Send frames, whole, until ``until`` (monotonic) or until the target closes the
    connection, reading all it sends meanwhile; how many were sent, and how long
    after the start the target closed the connection (None: it did not)."""
    started = time.monotonic()
    closed = threading.Event()
    closed_at: list[float] = []

    def drain() -> None:
        with contextlib.suppress(OSError):
            while sock.recv(65536):
                pass
        closed_at.append(time.monotonic() - started)
        closed.set()

    sock.settimeout(10.0)  # a send cut short by a timeout would split a frame
    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    sent = 0
    while time.monotonic() < until and not closed.is_set():
        try:
            sock.sendall(b"".join(frame(sent + i) for i in range(BATCH)))
        except OSError:
            break
        sent += BATCH
    closed.wait(0.5 if time.monotonic() < until else 0.0)
    return sent, (closed_at[0] if closed_at else None)


def first_announcement(sock: socket.socket, timeout: float = 5.0) -> RootAnnouncement:
    """Read frames until the target's tree announcement to us; that announcement."""
    deadline = time.monotonic() + timeout
    buffer = b""
    sock.settimeout(timeout)
    while time.monotonic() < deadline:
        while len(buffer) >= 10 and len(buffer) >= int.from_bytes(buffer[8:10], "big"):
            size = int.from_bytes(buffer[8:10], "big")
            frame, buffer = buffer[:size], buffer[size:]
            if frame[5] == 1:  # a tree announcement
                return decode_announcement(frame[12:], verify=False)
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("closed before announcing its root")
        buffer += chunk
    raise TimeoutError("no tree announcement")


def come_back(target: Target, until: float) -> int:
    """Keep trying to peer again with fresh keys until ``until``; how many were refused."""
    refused = 0
    while time.monotonic() < until:
        try:
            sock, _ = peer(target, Identity.generate())
        except OSError:
            refused += 1
        else:
            with sock:
                if closed_within(sock, 0.5) is not None:
                    refused += 1
        time.sleep(0.02)
    return refused


# ------------------------------------------------------------------ frame makers


def forged_frame(kind: str, attacker: Identity, target: Target, n: int) -> bytes:
    """The ``n``-th forged frame of ``kind``: well formed, for the target's root,
    with a fresh sequence, passing every cheap check; only its signature fails."""
    someone = Identity.generate()
    sequence = 10**12 + n
    if kind == "bootstrap":
        body = sign_bootstrap(someone, sequence, target.root_key, target.root_sequence)
        # Claimed to come from another key than the one that signed it.
        return encode_frame(BootstrapFrame(Identity.generate().public_key, FULL_WATERMARK, body.encode()))
    if kind == "announcement":
        ann = RootAnnouncement.create(attacker.public_key, 1 + n).with_hop(attacker, 1)
        raw = bytearray(ann.raw)
        raw[-1] ^= 0x01
        return encode_frame(TreeAnnouncementFrame(bytes(raw)))
    wakeup = sign_wakeup(someone, sequence, target.root_key, target.root_sequence)
    return encode_frame(WakeupBroadcastFrame(Identity.generate().public_key, wakeup.encode(), hop_limit=5))


def signed_bootstraps(target: Target, count: int, keys: int = 250) -> list[bytes]:
    """``count`` genuine bootstraps for the target's root, from ``keys`` keys, in
    rounds of rising sequence: each is fresh when it arrives, so each would cost
    a signature check."""
    origins = [Identity.generate() for _ in range(keys)]
    return [
        encode_frame(
            BootstrapFrame(
                origin.public_key,
                FULL_WATERMARK,
                sign_bootstrap(origin, 10**12 + n // keys, target.root_key, target.root_sequence).encode(),
            )
        )
        for n, origin in zip(range(count), (origins[i % keys] for i in range(count)), strict=True)
    ]


def deep_announcements(attacker: Identity, target: Target, count: int) -> list[bytes]:
    """``count`` validly signed announcements of :data:`DEEP_ANNOUNCEMENT_HOPS` hops,
    each from a root of its own (below the target's), so that none shares a
    verified prefix with another and each would cost every one of its signatures."""
    chain = [Identity.generate() for _ in range(DEEP_ANNOUNCEMENT_HOPS - 2)]
    frames = []
    for _ in range(count):
        root = below(target.root_key)
        ann = RootAnnouncement.create(root.public_key, 1).with_hop(root, 1)
        for hop in chain:
            ann = ann.with_hop(hop, 1)
        frames.append(encode_frame(TreeAnnouncementFrame(ann.with_hop(attacker, 1).raw)))
    return frames


def deep_traffic(sender: Identity, target: Target, count: int) -> list[bytes]:
    """Traffic for the victim with destination coordinates at the size limit,
    each different (no decision can be cached)."""
    frames = []
    for _ in range(count):
        ports = [random.randrange(1, 128) for _ in range(DEEP_COORDINATE_PORTS)]
        frames.append(
            encode_frame(TrafficFrame(tuple(ports), (), PublicKey(target.victim), sender.public_key, b"x"))
        )
    return frames
