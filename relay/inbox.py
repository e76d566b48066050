"""The ids of envelopes already handed to the homeserver, so that a duplicate
(an envelope fetched again because its acknowledgement was lost) is dropped.

The ids live in SQLite, which blocks: every call runs on a worker thread of the
inbox's own, never on the event loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from relay.errors import InboxError

T = TypeVar("T")


class Inbox:
    """Ids of envelopes delivered to the homeserver, until they expire."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relay-inbox")

    async def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            if self._db is None:
                raise InboxError("the inbox is not open")
            try:
                return work(self._db)
            except sqlite3.Error as exc:
                raise InboxError(f"inbox database {self.path}: {exc}") from None

        return await asyncio.get_running_loop().run_in_executor(self._worker, run)

    async def open(self) -> None:
        def run() -> None:
            db: sqlite3.Connection | None = None
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(
                    "CREATE TABLE IF NOT EXISTS delivered (id BLOB PRIMARY KEY, expires REAL NOT NULL)"
                )
            except (sqlite3.Error, OSError) as exc:
                if db is not None:
                    db.close()
                raise InboxError(f"cannot open the inbox database {self.path}: {exc}") from None
            self._db = db

        await asyncio.get_running_loop().run_in_executor(self._worker, run)

    async def seen(self, envelope_id: bytes) -> bool:
        def run(db: sqlite3.Connection) -> bool:
            return db.execute("SELECT 1 FROM delivered WHERE id = ?", (envelope_id,)).fetchone() is not None

        return await self._call(run)

    async def add(self, envelope_id: bytes, expires: float) -> None:
        def run(db: sqlite3.Connection) -> None:
            db.execute("INSERT OR IGNORE INTO delivered (id, expires) VALUES (?, ?)", (envelope_id, expires))

        await self._call(run)

    async def sweep(self, now: float) -> None:
        def run(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM delivered WHERE expires < ?", (now,))

        await self._call(run)

    async def close(self) -> None:
        def run() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await asyncio.get_running_loop().run_in_executor(self._worker, run)
        self._worker.shutdown(wait=False)
