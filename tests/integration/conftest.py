from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemons import DaemonNet


@pytest.fixture
def net(tmp_path: Path) -> Iterator[DaemonNet]:
    network = DaemonNet(tmp_path)
    try:
        yield network
    finally:
        network.stop_all()
