"""The relay store: one interface (:mod:`relay.stores.base`), two real backends
(:mod:`relay.stores.sqlite`, :mod:`relay.stores.postgres`), and the factory that
picks one by URL, importing only the backend in use."""

from __future__ import annotations

from relay.stores.base import Store, StoreError


def open_store(url: str) -> Store:
    """The store a URL names: ``sqlite:///path`` or ``postgresql://...``."""
    if url.startswith("sqlite:///"):
        from relay.stores.sqlite import SQLiteStore  # noqa: PLC0415 - load only the backend in use

        return SQLiteStore(url.removeprefix("sqlite://"))
    if url.startswith(("postgresql://", "postgres://")):
        from relay.stores.postgres import PostgresStore  # noqa: PLC0415 - load only the backend in use

        store: Store = PostgresStore(url)
        return store
    raise StoreError("bad-url", f"relay store {url!r}: expected sqlite:///path or postgresql://...")
