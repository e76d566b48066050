from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from tests.e2e.synapse import SYNAPSE_VERSION, SynapseUnavailable, ensure_synapse


@pytest.fixture(scope="session")
def synapse_python() -> Path:
    """The interpreter of a virtualenv holding the pinned Synapse, installed on first use."""
    try:
        return ensure_synapse()
    except SynapseUnavailable as exc:
        pytest.skip(f"matrix-synapse=={SYNAPSE_VERSION} could not be installed: {exc}")


def overlay_server_name() -> str:
    """A fresh server name shaped like the overlay's: 52 lower-case base32 characters."""
    return base64.b32encode(os.urandom(32)).decode().rstrip("=").lower()
