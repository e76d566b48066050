"""What the testbed's tests share."""

from __future__ import annotations

import os

import pytest

from bench.testbed import netns

REQUIRE_ENV = "PINEWOOD_REQUIRE_INTEROP"


@pytest.fixture
def namespaces_or_skip() -> None:
    """Network namespaces can be made here, or the test is skipped (failed,
    where the interoperability tests may not be skipped)."""
    try:
        netns.check_available()
    except netns.NamespaceError as exc:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"the testbed cannot run: {exc} (and ${REQUIRE_ENV}=1 forbids skipping)")
        pytest.skip(f"the testbed cannot run: {exc}")
