"""The SQLite store's files are the node's alone: its directory 0700, the database
and SQLite's -wal and -shm files 0600, whatever the umask of the process."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.stores.base import Quota, Store, secret_hash
from tests.relay.stores.conftest import run_with_store

NOW = 1_700_000_000.0
LOOSE_UMASK = 0o022
"""The usual umask of a shell: the files would be 0644 and the directory 0755 if
the store left their modes to it."""


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(LOOSE_UMASK)
    try:
        yield
    finally:
        os.umask(old)


async def write_something(store: Store) -> None:
    box, secret = os.urandom(16), os.urandom(32)
    quota = Quota(max_count=10, max_bytes=10 * 4096)
    await store.register(box, secret_hash(secret), quota, NOW + 86400.0)
    assert await store.deposit(box, os.urandom(16), NOW + 3600.0, os.urandom(1024), NOW)


@pytest.mark.usefixtures("loose_umask")
def test_a_new_store_is_private(tmp_path: Path) -> None:
    directory = tmp_path / "data" / "relay"
    database = directory / "store.db"
    seen: dict[str, int] = {}

    async def test(store: Store) -> None:
        await write_something(store)
        # While the store is open: SQLite removes -wal and -shm when it closes.
        seen.update({p.name: mode(p) for p in directory.iterdir()})

    run_with_store(f"sqlite:///{database}", test)
    assert mode(directory) == 0o700
    assert {"store.db", "store.db-wal", "store.db-shm"} <= seen.keys(), seen
    assert seen == dict.fromkeys(seen, 0o600)
    assert mode(database) == 0o600


@pytest.mark.usefixtures("loose_umask")
def test_files_left_readable_by_others_are_tightened(tmp_path: Path) -> None:
    directory = tmp_path / "shared"
    directory.mkdir()
    os.chmod(directory, 0o755)
    database = directory / "store.db"
    for path in (database, directory / "store.db-wal"):
        path.touch()
        os.chmod(path, 0o644)
    seen: dict[str, int] = {}

    async def test(store: Store) -> None:
        await write_something(store)
        seen.update({p.name: mode(p) for p in directory.iterdir()})

    run_with_store(f"sqlite:///{database}", test)
    assert {"store.db", "store.db-wal", "store.db-shm"} <= seen.keys(), seen
    assert seen == dict.fromkeys(seen, 0o600)
    # A directory that was there already is not the store's to change.
    assert mode(directory) == 0o755
