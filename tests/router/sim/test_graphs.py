"""The mesh on the reference simulator's own topologies (../shared/graphs/)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from router.sim.mesh import Mesh
from router.sim.topology import load_edge_list
from tests.conftest import REPO_ROOT
from tests.router.sim.mesh_checks import assert_full_delivery, settle_and_expire

GRAPHS_ENV = "PINEWOOD_GRAPHS"


def graph_path(name: str) -> Path:
    base = os.environ.get(GRAPHS_ENV)
    return (Path(base) if base else REPO_ROOT.parent / "shared" / "graphs") / name


def load_or_skip(name: str) -> Mesh:
    path = graph_path(name)
    if not path.is_file():
        pytest.skip(f"{path} not found (set ${GRAPHS_ENV} to the reference graphs folder)")
    return Mesh.from_topology(load_edge_list(path), seed=250)


@pytest.mark.parametrize("name", ["sim.txt", "sim-medium.txt", "graph-250.txt"])
def test_reference_graph(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    mesh = load_or_skip(name)
    took = settle_and_expire(mesh, limit_s=60.0)
    rounds = assert_full_delivery(mesh)
    # No honest peer ever reaches its budget of signature checks, cold start included.
    over = {n: k for n, node in mesh.nodes.items() for k in node.core.drops if k.startswith("over budget")}
    assert not over, over
    with capsys.disabled():  # shown in every run, not only on failure
        print(
            f"\n{name}: {len(mesh.nodes)} nodes converged in {took:.1f} s simulated; delivery rounds {rounds}"
        )
