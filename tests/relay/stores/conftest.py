"""Relay store fixtures: every store test runs against each real backend."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.postgres import postgres_url
from relay.stores import open_store
from relay.stores.base import Store


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL for an empty store of each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'relay.db'}"
    else:
        yield postgres_url(tmp_path.name)


def run_with_store(url: str, test: Callable[[Store], Coroutine[Any, Any, None]]) -> None:
    async def main() -> None:
        store = open_store(url)
        await store.open()
        try:
            await asyncio.wait_for(test(store), 120)
        finally:
            await store.close()

    asyncio.run(main())
