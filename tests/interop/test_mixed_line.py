"""A line of four Go reference routers and four Pinewood routers, alternating.

Once with the highest key on a Go node and once on a Pinewood node, the eight
processes must agree on one tree and one snake as the reference defines them
(within three of the reference's bootstrap rounds of the line forming),
and traffic must cross the line both ways: ``pinewood ping`` to Go nodes, Go
packets delivered to Pinewood nodes, and Go to Go through Pinewood transit.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.daemons import holds_for, wait_until
from router.daemon.settings import DEFAULT_EXTENSIONS
from tests.interop.mixed import MixedNet, key_of

LENGTH = 8
CONVERGE_WITHIN_S = 15.0
"""Three rounds of the reference's 5 s bootstrap schedule.  A node's descending
neighbour is set only by a bootstrap from the node below it, and a bootstrap
finds its way only along route entries that earlier bootstraps left, so where
Go nodes wait on each other's rounds the snake takes several.  With the keys of
the Pinewood-root line it is right 11.1-11.2 s after the line forms (the last fix is
a Pinewood node's descending neighbour, set by a Go node's third bootstrap); a
line of eight Go nodes with the same keys takes 7-8 s, the Go-root line 1.3-2.1 s."""
BURST = 10
"""Packets sent at once: the reference's per-flow queue holds 16 and drops the oldest
when full, so a Go sender's larger bursts lose packets by design."""


def kind_at(position: int) -> str:
    return "go" if position % 2 == 0 else "pinewood"


def line_seeds(root_on: str) -> list[str]:
    """Eight seeds in line order, the highest key near the middle on a ``root_on`` node,
    the others in a fixed shuffled order (so keys do not follow the line)."""
    rng = random.Random(f"mixed-line-{root_on}")
    seeds = sorted((rng.randbytes(32).hex() for _ in range(LENGTH)), key=key_of)
    highest = seeds.pop()
    rng.shuffle(seeds)
    root_at = 4 if root_on == "go" else 3
    assert kind_at(root_at) == root_on
    seeds.insert(root_at, highest)
    return seeds


@dataclass
class Line:
    net: MixedNet
    names: list[str]
    converged_s: float

    def of_kind(self, kind: str) -> list[str]:
        return [name for name in self.names if name.startswith(kind[0])]


@pytest.fixture(scope="module", params=["go", "pinewood"], ids=["go-root", "pinewood-root"])
def line(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, gopeer_binary: Path
) -> Iterator[Line]:
    root_on: str = request.param
    seeds = line_seeds(root_on)
    names = [f"{kind_at(i)[0]}{i}" for i in range(LENGTH)]
    net = MixedNet(tmp_path_factory.mktemp(f"line-{root_on}"), gopeer_binary)
    try:
        # Pinewood nodes first, then the Go nodes, each dialling both its
        # neighbours: the line forms within milliseconds of the last Go node's
        # start, and every node's timers (the reference's 5 s bootstrap
        # schedule above all) start with the line, not seconds before it.
        for i, name in enumerate(names):
            if kind_at(i) == "pinewood":
                net.plan_pinewood(name, seeds[i])
                net.start_pinewood(name)
        started = time.monotonic()
        for i, name in enumerate(names):
            if kind_at(i) == "go":
                neighbours = [names[j] for j in (i - 1, i + 1) if 0 <= j < LENGTH]
                net.start_go(name, seeds[i], peers=[net.pinewood_uri(n) for n in neighbours])
        net.order = list(names)
        net.wait_converged(timeout=60)
        converged = time.monotonic() - started
        yield Line(net, names, converged)
    finally:
        net.stop_all()


def test_one_tree_and_one_snake_within_three_bootstrap_rounds(line: Line) -> None:
    views = {v.name: v for v in line.net.views()}
    keys = sorted(v.key for v in views.values())
    root = next(v for v in views.values() if v.key == keys[-1])
    assert line.converged_s <= CONVERGE_WITHIN_S, f"converged after {line.converged_s:.1f} s"
    print(f"tree and snake right {line.converged_s:.1f} s after the line formed")
    # The checks of MixedNet.problems(), spelled out on the result for the record:
    assert {v.root for v in views.values()} == {root.key}
    assert root.coordinates == () and root.parent is None
    for view in views.values():
        if view is root:
            continue
        parent = next(v for v in views.values() if v.key == view.parent)
        port = next(p for p, key in parent.peer_ports.items() if key == view.key)
        assert view.coordinates == (*parent.coordinates, port), view
        rank = keys.index(view.key)
        assert view.descending == (keys[rank - 1] if rank else None), view
    # In a line, the parent is a neighbour along it, and the depth grows by one a hop.
    at = line.names.index(root.name)
    for i, name in enumerate(line.names):
        assert len(views[name].coordinates) == abs(i - at), (name, views[name].coordinates)


def ping_counts(output: str) -> tuple[int, int]:
    match = re.search(r"(\d+) sent, (\d+) received", output)
    assert match, output
    return int(match.group(1)), int(match.group(2))


def test_pinewood_pings_every_go_node(line: Line) -> None:
    net = line.net
    pairs = [(p, g) for p in line.of_kind("pinewood") for g in line.of_kind("go")]
    with ThreadPoolExecutor(max_workers=len(pairs)) as pool:
        results = list(pool.map(lambda pair: net.pinewood_ping(pair[0], net.key(pair[1]), count=3), pairs))
    lost = [
        (pair, result.stdout)
        for pair, result in zip(pairs, results, strict=True)
        if ping_counts(result.stdout) != (3, 3)
    ]
    assert not lost, lost
    # Go nodes answered them: each counted three pings from each Pinewood node.
    for g in line.of_kind("go"):
        echoed = net.go[g].received()["echoed"]
        for p in line.of_kind("pinewood"):
            assert echoed.get(net.key(p), 0) >= 3, (g, p, echoed)


def test_go_packets_are_delivered_to_pinewood_nodes(line: Line) -> None:
    net = line.net
    for g in line.of_kind("go"):
        for p in line.of_kind("pinewood"):
            answer = net.go[g].ping(net.key(p), count=2)
            assert answer["answered"] == 2, (g, p, answer)
    # Plain packets, counted by the Pinewood node as payloads for no application.
    source, target = line.of_kind("go")[0], line.of_kind("pinewood")[-1]

    def counts() -> tuple[int, int]:
        counters = net.pinewood_status(target)["counters"]
        return (
            int(counters.get("frames delivered to the application", 0)),
            int(counters.get("overlay payloads for no application", 0)),
        )

    before = counts()
    for burst in range(1, 11):
        net.go[source].send(net.key(target), count=BURST, size=200)
        wait_until(
            lambda b=burst: counts()[1] - before[1] >= b * BURST,
            10,
            f"{burst * BURST} packets {source} -> {target}",
        )
    time.sleep(0.5)  # and no more than that arrives
    after = counts()
    assert (after[0] - before[0], after[1] - before[1]) == (100, 100)


def test_go_to_go_across_pinewood_transit(line: Line) -> None:
    net = line.net
    first, last = line.of_kind("go")[0], line.of_kind("go")[-1]
    transit = line.of_kind("pinewood")[:-1]  # every Pinewood node between g0 and g6
    forwarded = {p: net.pinewood_status(p)["traffic"]["forwarded"] for p in transit}
    answer = net.go[first].ping(net.key(last), count=3)
    assert answer["answered"] == 3, answer
    for burst in range(1, 21):
        net.go[first].send(net.key(last), count=BURST, size=500)
        wait_until(
            lambda b=burst: net.go[last].received()["received"].get(net.key(first), 0) >= b * BURST,
            10,
            f"{burst * BURST} packets {first} -> {last}",
        )
    holds_for(
        lambda: net.go[last].received()["received"][net.key(first)] == 200,
        0.5,
        "exactly 200 packets arrive, no late duplicates",
    )
    for p in transit:
        assert net.pinewood_status(p)["traffic"]["forwarded"] - forwarded[p] >= 206, p


# The tests below change the network; they run last, in this order.


def test_a_newcomer_with_a_higher_key_becomes_root_and_its_departure_hands_it_back(line: Line) -> None:
    """A node of the other implementation than the root's, with the highest key of
    all, joins at one end: everyone moves under it.  Then it goes away, and the
    old root takes over again."""
    net = line.net
    old_root = max(line.names, key=net.key)
    highest = max(net.key(name) for name in line.names)
    rng = random.Random(f"newcomer-{old_root}")
    while key_of(seed := rng.randbytes(32).hex()) <= highest:
        pass
    end = line.names[-1]
    if old_root.startswith("g"):
        net.plan_pinewood("newcomer", seed)
        net.start_pinewood("newcomer", peers=[net.pinewood.daemons[end].uri])
    else:
        net.start_go("newcomer", seed, peers=[net.pinewood.daemons[end].uri])
    net.order = [*line.names, "newcomer"]
    joined = net.wait_converged(timeout=30)
    assert {v.root for v in net.views()} == {net.key("newcomer")}
    if old_root.startswith("g"):
        net.pinewood.kill("newcomer")
    else:
        net.go["newcomer"].stop()
    net.order = list(line.names)
    left = net.wait_converged(timeout=60)
    assert {v.root for v in net.views()} == {net.key(old_root)}
    print(f"newcomer root after {joined:.1f} s; old root back {left:.1f} s after it left")


def test_the_root_restarts_and_the_line_agrees_again(line: Line) -> None:
    net = line.net
    root = max(line.names, key=net.key)
    if root in net.go:
        net.go[root].restart()
    else:
        net.restart_pinewood(root)
    took = net.wait_converged(timeout=60)
    assert {v.root for v in net.views()} == {net.key(root)}
    print(f"agreed again {took:.1f} s after the root restarted")


def test_no_go_peer_was_ever_closed_for_a_bad_signature(line: Line) -> None:
    """Pinewood closes and holds off peers that send frames whose signatures fail;
    after everything above, no Go node may have been taken for one."""
    for name in line.of_kind("pinewood"):
        status = line.net.pinewood_status(name)
        assert "closed: bad signature" not in status["drops"], (name, status["drops"])
        assert "peers held off: bad signature" not in status["counters"], (name, status["counters"])


def test_go_nodes_take_the_extension_word_and_are_never_sent_an_extension(line: Line) -> None:
    """Every Pinewood node announces its extensions in handshake bytes 1-3, which
    the reference signs but never reads: every peering above came up with them.
    On a line where Pinewood nodes have only Go neighbours no peering may use
    one, and after the restarts above, which broke links under live bootstrap
    paths and moved the tree, no Pinewood node may have sent an extension frame,
    except the end node of the Go-root line, which the Pinewood newcomer peered
    with (two Pinewood nodes use their extensions)."""
    old_root = max(line.names, key=line.net.key)
    met_a_pinewood_newcomer = {line.names[-1]} if old_root.startswith("g") else set()
    for name in line.of_kind("pinewood"):
        daemon = line.net.pinewood.daemons[name]
        peers = [p for p in daemon.api("GET", "/peers") if "port" in p]
        assert peers and all(p["extensions"] == [] for p in peers), (name, peers)
        setting = {row["name"]: row["value"] for row in daemon.api("GET", "/config")}
        assert setting["routing_extensions"] == list(DEFAULT_EXTENSIONS), name
        status = line.net.pinewood_status(name)
        assert any(k.startswith("announcement: ") for k in status["routing"])  # the counters are live
        if name in met_a_pinewood_newcomer:
            # It told the newcomer of its Go neighbour: the two Pinewood nodes used lookahead.
            assert status["routing"].get("lookahead frames sent", 0) > 0, (name, status["routing"])
            continue
        sent_any = {
            "path notices sent",
            "lookahead frames sent",
            "path confirmations sent",
            "path confirmations passed on",
            "path moved sent",
        }
        assert not sent_any & set(status["routing"]), (name, status["routing"])
