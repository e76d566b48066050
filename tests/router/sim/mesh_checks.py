"""Shared checks for mesh tests: convergence and all-pairs delivery."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from router.routing.constants import ENTRY_EXPIRY_S
from router.sim.mesh import Mesh

CHECK_EVERY_S = 0.5


def settle(mesh: Mesh, limit_s: float = 60.0) -> float:
    """Run until the tree and snake are right; return the simulated seconds it took.

    Fails (with the outstanding problems) if it takes longer than ``limit_s``.
    """
    start = mesh.now
    while mesh.now - start <= limit_s:
        if mesh.converged():
            return mesh.now - start
        mesh.run_for(CHECK_EVERY_S)
    problems = mesh.tree_problems() + mesh.snake_problems()
    raise AssertionError(f"not converged after {limit_s} s: {len(problems)} problems, e.g. {problems[:5]}")


def deliver_all(mesh: Mesh, pairs: Iterable[tuple[str, str]] | None = None) -> tuple[int, int, int]:
    """Send one frame per ordered pair; return (delivered, sent, most transmissions of one frame).

    Route entries from before convergence can outlive it by up to their
    expiry, so callers let the mesh run that long first (see :func:`settle_and_expire`).
    """
    names = list(mesh.nodes)
    todo = list(pairs) if pairs is not None else [(a, b) for a in names for b in names if a != b]
    hops: Counter[bytes] = Counter()
    mesh.frame_observer = lambda _a, _b, data: hops.update((data[-8:],)) if data[5] == 3 else None
    before = {name: len(node.delivered) for name, node in mesh.nodes.items()}
    expected: dict[bytes, str] = {}
    for i, (a, b) in enumerate(todo):
        tag = (i | (1 << 62)).to_bytes(8, "big")
        expected[tag] = b
        mesh.send(a, mesh.nodes[b].core.key, tag)
    mesh.run_for(10.0)
    mesh.frame_observer = None
    delivered = 0
    for name, node in mesh.nodes.items():
        for out in node.delivered[before[name] :]:
            if out.destination_key == node.core.key and expected.get(out.payload) == name:
                delivered += 1
    return delivered, len(todo), max(hops.values(), default=0)


RELAPSE_LIMIT_S = 5.0


def settle_and_expire(mesh: Mesh, limit_s: float = 60.0) -> float:
    """:func:`settle`, then wait out route entries installed before convergence.

    On larger graphs the reference's soft state lets a descending neighbour
    lapse for a fraction of a second after convergence, when one bootstrap round
    takes another path and the entry expires just before the next refresh; the
    state must be right again within ``RELAPSE_LIMIT_S``.
    """
    took = settle(mesh, limit_s)
    mesh.run_for(ENTRY_EXPIRY_S + 1.0)
    settle(mesh, RELAPSE_LIMIT_S)
    return took


def assert_full_delivery(
    mesh: Mesh, pairs: list[tuple[str, str]] | None = None, within_s: float = 60.0
) -> list[tuple[float, int, int]]:
    """Rounds of all-pairs traffic until one delivers every frame; fail if none
    does within ``within_s``.  Every round must be loop-free.

    Right after convergence, frames can still follow route entries installed
    before it (they expire within ``ENTRY_EXPIRY_S`` of the last bootstrap that
    used that path, and paths keep improving for a while), so the first round
    may lose some; the rounds are returned for the caller to report.
    """
    start = mesh.now
    rounds: list[tuple[float, int, int]] = []
    while mesh.now - start <= within_s:
        at = mesh.now
        delivered, sent, most_hops = deliver_all(mesh, pairs)
        assert most_hops < len(mesh.nodes), f"a frame was sent {most_hops} times: a loop"
        rounds.append((at, delivered, sent))
        if delivered == sent:
            return rounds
    raise AssertionError(f"no round delivered every frame: {rounds}")
