"""Scenario events change the mesh the way they say, and runs report them."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from bench.sim.cli import main
from bench.sim.metrics import hop_distances, neighbours
from bench.sim.runner import simulate
from bench.sim.scenarios import plan
from bench.sim.setup import Built, SimConfig, build_mesh, build_topology, latency_model


def _built(scenario: str, cuts: int = 5, churn: float = 0.05) -> tuple[SimConfig, Built]:
    config = SimConfig(
        graph="er:30:4", scenario=scenario, duration_s=60.0, event_at_s=5.0, cuts=cuts, churn_per_min=churn
    )
    return config, build_mesh(config, random.Random(1))


def test_root_loss_removes_the_highest_key() -> None:
    config, built = _built("root-loss")
    mesh = built.mesh
    root = max(mesh.nodes, key=lambda n: mesh.nodes[n].core.key)
    (event,) = plan(config, built, random.Random(2))
    assert root in event.action()
    assert root not in mesh.nodes and len(mesh.nodes) == 29


def test_link_cuts_keep_the_graph_connected() -> None:
    config, built = _built("link-cuts", cuts=8)
    mesh = built.mesh
    before = len(mesh.links)
    (event,) = plan(config, built, random.Random(2))
    event.action()
    assert len(mesh.links) == before - 8
    assert len(hop_distances(neighbours(mesh), "n0")) == 30


def test_mobility_moves_one_node_to_new_neighbours() -> None:
    config, built = _built("mobility")
    mesh = built.mesh
    old = neighbours(mesh)
    (event,) = plan(config, built, random.Random(2))
    mover = event.action().split()[1]
    assert neighbours(mesh)[mover] and not neighbours(mesh)[mover] & old[mover]


def test_churn_events_follow_the_rate() -> None:
    config, built = _built("churn", churn=1.0)
    events = plan(config, built, random.Random(2))
    # 30 nodes a minute for 55 s: about 27 events (Poisson, so loosely).
    assert 10 < len(events) < 50
    assert all(5.0 < e.at < 60.0 for e in events)
    for event in events:
        event.action()
    assert 0 < len(built.mesh.nodes) <= 30


def test_generators_and_latency_models() -> None:
    rng = random.Random(1)
    assert len(build_topology("grid:3x4", rng).nodes) == 12
    assert len(build_topology("ba:50:2", rng).nodes) == 50
    assert latency_model("fixed:0.02")(rng) == 0.02
    assert 0.01 <= latency_model("uniform:0.01:0.02")(rng) <= 0.02
    with pytest.raises(ValueError, match="latency"):
        latency_model("gauss:1")
    with pytest.raises(ValueError, match="no generator"):
        build_topology("no-such-graph.txt", rng)


def test_a_cold_start_on_a_small_graph_converges_and_delivers() -> None:
    result = simulate(SimConfig(graph="ring:12", duration_s=40.0, pairs=20, memory_sample=5))
    conv = result["convergence"]
    assert conv["converged_at"] is not None and conv["stable_from"] is not None
    assert result["delivery"]["established"] == 1.0
    assert result["stretch"]["first"]["count"] > 0
    assert result["stretch"]["established"]["p50"] >= 1.0
    assert result["memory"]["sampled_nodes"] == 5
    assert result["tables"]["peers"]["max"] == 2
    assert result["timeline"][-1]["tree"] == 1.0


def test_the_command_line_states_when_signatures_are_off(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.json"
    assert (
        main(["--graph", "line:6", "--duration", "20", "--pairs", "5", "--no-signatures", "--out", str(out)])
        == 0
    )
    assert "OFF (--no-signatures)" in capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["signatures"] is False
    assert result["config"]["graph"] == "line:6"
