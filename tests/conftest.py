"""Shared test configuration: hypothesis profiles, the reference vectors, and a
network of daemon processes cleaned up after each test."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from bench.daemons import DaemonNet
from router.daemon.build import stale_extensions


def pytest_sessionstart(session: pytest.Session) -> None:
    """A compiled module older than its source would test old code: refuse."""
    stale = [s for top in ("router", "relay") for s in stale_extensions(REPO_ROOT / top)]
    if stale:
        raise pytest.UsageError(
            f"compiled modules are older than their sources ({', '.join(stale[:5])}): "
            "run 'make compiled' to rebuild them, or 'make clean-compiled' to run pure Python"
        )


# "ci" is the default: deterministic (derandomized) so a failure reproduces from the
# log, and no per-example deadline, since CI machines are shared and slow.
settings.register_profile(
    "ci", max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

REPO_ROOT = Path(__file__).resolve().parent.parent

PROCESS_PATHS = (
    "tests/integration/",
    "tests/interop/",
    "tests/e2e/",
    "tests/hostile/",
    "tests/deploy/",
    "tests/bench/",
    "tests/relay/stores/test_postgres.py",
    "tests/router/daemon/test_keyfile.py",
    "tests/router/daemon/test_metrics.py",
    "tests/router/daemon/test_startup.py",
    "bench/bench_throughput.py",
    "bench/bench_sessions.py",
)
"""Where the tests that start other processes live: they get the ``process``
marker, and ``make check`` leaves them out (so do the stores' tests run
against PostgreSQL, a parameter of tests that also run on SQLite).  Any other test that starts a
process fails, naming this list (:func:`no_processes_here`)."""


SERIAL_PATHS = (
    "tests/interop/",
    "tests/hostile/",
    "tests/integration/test_fair_queues.py",
    "bench/bench_throughput.py",
    "bench/bench_sessions.py",
)
"""Tests that hold real processes to time bounds beside the Go reference, or
that flood the processors: they get the ``serial`` marker, and ``make test``
runs them alone after running the rest two at a time (pytest-xdist)."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = item.path.relative_to(REPO_ROOT).as_posix()
        callspec = getattr(item, "callspec", None)
        on_postgres = callspec is not None and "postgresql" in callspec.params.values()
        if path.startswith(PROCESS_PATHS) or on_postgres:
            item.add_marker(pytest.mark.process)
        if path.startswith(SERIAL_PATHS):
            item.add_marker(pytest.mark.serial)


@pytest.fixture(autouse=True)
def no_processes_here(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test outside :data:`PROCESS_PATHS` may not start a process, so that
    the quick tier stays what it says."""
    if request.node.get_closest_marker("process") is not None:
        return

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(
            f"{request.node.nodeid} starts a process: add its file to PROCESS_PATHS in tests/conftest.py"
        )

    monkeypatch.setattr(subprocess.Popen, "_execute_child", refuse)


VECTORS_ENV = "PINEWOOD_VECTORS"


def vectors_path() -> Path:
    """``$PINEWOOD_VECTORS``, else ``../shared/vectors/pinecone-v1.json`` beside the checkout."""
    explicit = os.environ.get(VECTORS_ENV)
    if explicit:
        return Path(explicit)
    return REPO_ROOT.parent / "shared" / "vectors" / "pinecone-v1.json"


@pytest.fixture(scope="session")
def vectors() -> dict[str, Any]:
    path = vectors_path()
    if not path.is_file():
        pytest.skip(
            f"reference vectors not found at {path} (set ${VECTORS_ENV} to point at pinecone-v1.json)"
        )
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@pytest.fixture
def net(tmp_path: Path) -> Iterator[DaemonNet]:
    network = DaemonNet(tmp_path)
    try:
        yield network
    finally:
        network.stop_all()
