"""Micro-benchmarks of the routing core (pytest-benchmark).

- the traffic fast path on a cache hit, against a bare forwarder (read the
  destination key, one dict lookup, queue the bytes): the floor any Python
  router pays;
- a full SNEK next-hop computation with 50 peers and 500 route entries;
- handling one bootstrap (signature check, route install, forwarding);
- the mesh's wall-clock cost per simulated second on a 250-node graph.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

from router.routing.core import RouterCore
from router.routing.outputs import SendFrame
from router.routing.snek import SnakeEntry, next_hop_snek
from router.routing.tree import PeerAnnouncement
from router.sim import topology
from router.sim.mesh import Mesh
from router.wire import (
    FULL_WATERMARK,
    BootstrapFrame,
    Identity,
    PublicKey,
    RootAnnouncement,
    TrafficFrame,
    TreeAnnouncementFrame,
    Watermark,
    encode_frame,
    sign_bootstrap,
)

Bench = Any
NOW = 1000.0


def ident(n: int) -> Identity:
    return Identity.from_seed(n.to_bytes(32, "big"))


def forwarding_core() -> tuple[RouterCore, int, bytes]:
    """A core with an upstream and a downstream peer, and a frame it forwards between them."""
    ids = sorted((ident(n) for n in range(1, 4)), key=lambda i: i.public_key)
    low, mid, high = ids
    core = RouterCore(mid, NOW)
    up, _ = core.add_peer(high.public_key, 3, NOW)
    down, _ = core.add_peer(low.public_key, 3, NOW)
    ann = RootAnnouncement.create(high.public_key, 1).with_hop(high, 1)
    core.handle_frame(up, encode_frame(TreeAnnouncementFrame(ann.raw)), NOW)
    low_ann = ann.with_hop(mid, down).with_hop(low, 1)
    core.handle_frame(down, encode_frame(TreeAnnouncementFrame(low_ann.raw)), NOW)
    # traffic from the root's side, tree-routed to the low node's coordinates
    frame = TrafficFrame(low_ann.coordinates[:-1], (), low.public_key, high.public_key, b"x" * 1200)
    return core, up, encode_frame(frame)


def test_baseline_bare_forwarder(benchmark: Bench) -> None:
    _, _, data = forwarding_core()
    table = {data[16:48]: 2}
    out: list[SendFrame] = []

    def forward() -> None:
        port = table[data[16:48]]
        out.append(SendFrame(port, data, True))
        if len(out) > 1000:
            out.clear()

    benchmark(forward)


def test_traffic_cached_decision(benchmark: Bench) -> None:
    core, up, data = forwarding_core()
    first = core.handle_frame(up, data, NOW)
    assert [type(o) for o in first] == [SendFrame]
    result = benchmark(core.handle_frame, up, data, NOW)
    assert isinstance(result[0], SendFrame) and result[0].data is data
    assert core.traffic.hits > 0


def snek_state(peers: int, routes: int) -> dict[str, Any]:
    rng = random.Random(1)

    def key() -> PublicKey:
        return PublicKey(rng.randbytes(32))

    root = PublicKey(b"\xff" * 31 + b"\x00")
    anns = {}
    peer_keys = {}
    for port in range(1, peers + 1):
        signers = (root, *(key() for _ in range(rng.randrange(1, 6))))
        anns[port] = PeerAnnouncement(
            RootAnnouncement.create(root, 1), NOW, port, (root, 1), signers, tuple(range(len(signers) - 1))
        )
        peer_keys[port] = signers[-1]
    table = {}
    for _ in range(routes):
        k = key()
        table[k] = SnakeEntry(k, rng.randrange(1, peers + 1), None, 5, NOW, (root, 1))
    return {
        "announcements": anns,
        "peer_keys": peer_keys,
        "link_types": dict.fromkeys(peer_keys, 3),
        "routes": table,
        "root_key": root,
        "parent": 1,
    }


def test_snek_next_hop_50_peers_500_routes(benchmark: Bench) -> None:
    state = snek_state(50, 500)
    destination = PublicKey(b"\x80" + bytes(31))
    our = PublicKey(b"\x10" + bytes(31))

    def run() -> tuple[int | None, Watermark]:
        return next_hop_snek(
            bootstrap=False, destination=destination, our_key=our, watermark=FULL_WATERMARK, now=NOW, **state
        )

    port, watermark = benchmark(run)
    assert port is not None and watermark.key > destination


def test_handle_bootstrap(benchmark: Bench) -> None:
    ids = sorted((ident(n) for n in range(10, 13)), key=lambda i: i.public_key)
    low, mid, high = ids
    core = RouterCore(mid, NOW)
    up, _ = core.add_peer(high.public_key, 3, NOW)
    down, _ = core.add_peer(low.public_key, 3, NOW)
    ann = RootAnnouncement.create(high.public_key, 1).with_hop(high, 1)
    core.handle_frame(up, encode_frame(TreeAnnouncementFrame(ann.raw)), NOW)
    root = core.root()
    rounds = 2000
    frames = iter(
        encode_frame(
            BootstrapFrame(
                low.public_key, FULL_WATERMARK, sign_bootstrap(low, seq, root[0], root[1]).encode()
            )
        )
        for seq in range(1, rounds + 2)
    )
    counter = itertools.count()

    def handle() -> None:
        core.handle_frame(down, next(frames), NOW + next(counter) * 1e-6)

    benchmark.pedantic(handle, rounds=rounds, iterations=1, warmup_rounds=1)
    assert core.routes[low.public_key].source == down


def graph_250() -> topology.Topology:
    shared = Path(__file__).resolve().parent.parent.parent / "shared" / "graphs" / "graph-250.txt"
    if shared.is_file():
        return topology.load_edge_list(shared)
    return topology.random_graph(250, 250, random.Random(250))


def test_mesh_250_nodes_per_simulated_second(benchmark: Bench) -> None:
    mesh = Mesh.from_topology(graph_250(), seed=250)
    # Measured once settled (bootstraps every 5 s); run as a test (the
    # benchmark disabled) it only has to converge, which takes 6.5 s simulated.
    mesh.run_for(15 if benchmark.disabled else 60)
    assert not mesh.tree_problems()
    benchmark.pedantic(mesh.run_for, args=(1.0,), rounds=10, iterations=1)
