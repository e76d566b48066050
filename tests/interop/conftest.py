from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.gopeer import GoUnavailable, ensure_gopeer
from tests.interop.mixed import MixedNet

REQUIRE_ENV = "PINEWOOD_REQUIRE_INTEROP"
"""Set to 1 (as CI does) to fail, not skip, where a Go program cannot be built."""


def unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} (and ${REQUIRE_ENV}=1 forbids skipping)")
    pytest.skip(reason)


def gopeer_or_skip(build: str = "quic-go-v0.37.4") -> Path:
    """A built ``gopeer`` (the Go reference router), built on first use."""
    try:
        return ensure_gopeer(build)
    except GoUnavailable as exc:
        unavailable(f"the Go reference peer cannot be built: {exc}")
        raise


@pytest.fixture(scope="session")
def gopeer_binary() -> Path:
    return gopeer_or_skip()


@pytest.fixture
def mixed(tmp_path: Path, gopeer_binary: Path) -> Iterator[MixedNet]:
    net = MixedNet(tmp_path, gopeer_binary)
    try:
        yield net
    finally:
        net.stop_all()
