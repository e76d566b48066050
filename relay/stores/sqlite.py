"""The SQLite relay store: embedded, WAL, durable before a deposit is answered.

One thread owns the connection.  Requests queue up while it works; each turn
it takes everything waiting, runs it in one transaction and commits once
(``synchronous=FULL``: the commit is on disk), then answers them all.  Many
concurrent deposits therefore cost one fsync per batch, not one each.
"""

from __future__ import annotations

import asyncio
import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from relay.stores.base import Quota, Stored, StoreError, StoreStats, round_expiry

T = TypeVar("T")
MAX_BATCH = 2048

SCHEMA = """
CREATE TABLE IF NOT EXISTS mailboxes (
    id BLOB PRIMARY KEY,
    secret_hash BLOB NOT NULL,
    max_count INTEGER NOT NULL,
    max_bytes INTEGER NOT NULL,
    count INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0,
    expires REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS envelopes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    mailbox BLOB NOT NULL,
    id BLOB NOT NULL,
    expires REAL NOT NULL,
    body BLOB NOT NULL,
    UNIQUE (mailbox, id)
);
CREATE INDEX IF NOT EXISTS envelopes_by_mailbox ON envelopes (mailbox, seq);
CREATE INDEX IF NOT EXISTS envelopes_by_expiry ON envelopes (expires);
"""

DIR_MODE = 0o700
FILE_MODE = 0o600
SIDE_FILES = ("-wal", "-shm", "-journal")
"""SQLite's own files beside the database; it creates them with the database's mode."""


def _make_private(path: Path) -> None:
    """Make the store's directory (0700) and database file (0600) before SQLite
    opens it, whatever the umask; SQLite gives its -wal and -shm files the
    database's mode.  Files that an older version left readable by others lose
    those bits.  The envelopes are sealed, but which mailboxes exist and how much
    they hold is no one else's business.  A directory that exists already is left
    as it is: it may be shared (/srv, say)."""
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True, mode=DIR_MODE)
        os.chmod(path.parent, DIR_MODE)  # mkdir's mode is cut by the umask: be exact
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        if os.fstat(fd).st_mode & 0o777 != FILE_MODE:
            os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    for suffix in SIDE_FILES:
        side = path.with_name(path.name + suffix)
        if side.exists() and side.stat().st_mode & 0o777 != FILE_MODE:
            os.chmod(side, FILE_MODE)


Job = tuple[Callable[[sqlite3.Connection], Any], asyncio.AbstractEventLoop, "asyncio.Future[Any]"]


class SQLiteStore:
    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.batches = 0

    async def open(self) -> None:
        try:
            _make_private(self.path)
        except OSError as exc:
            raise StoreError("store-unavailable", f"relay store {self.path}: {exc.strerror or exc}") from None
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="relay-sqlite", daemon=True)
        self._thread.start()
        await ready

    async def close(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join)
            self._thread = None

    # ------------------------------------------------------------ the thread

    def _run(self, ready: asyncio.Future[None]) -> None:
        loop = ready.get_loop()
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA secure_delete=ON")  # delivered envelopes leave no bytes behind
            db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            error = StoreError("store-unavailable", f"relay store {self.path}: {exc}")
            loop.call_soon_threadsafe(ready.set_exception, error)
            return
        loop.call_soon_threadsafe(ready.set_result, None)
        stopping = False
        while not stopping:
            first = self._jobs.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                batch.append(job)
            self._run_batch(db, batch)
        db.close()

    def _run_batch(self, db: sqlite3.Connection, batch: list[Job]) -> None:
        results: list[tuple[bool, Any]] = []
        db.execute("BEGIN IMMEDIATE")
        for work, _, _ in batch:
            db.execute("SAVEPOINT job")
            try:
                results.append((True, work(db)))
                db.execute("RELEASE job")
            except StoreError as exc:
                db.execute("ROLLBACK TO job")
                db.execute("RELEASE job")
                results.append((False, exc))
            except sqlite3.Error as exc:
                db.execute("ROLLBACK TO job")
                db.execute("RELEASE job")
                results.append((False, StoreError("store-error", str(exc))))
        try:
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            failure = StoreError("store-error", f"commit failed: {exc}")
            results = [(False, failure)] * len(batch)
        self.batches += 1
        for (_, loop, future), (ok, value) in zip(batch, results, strict=True):
            loop.call_soon_threadsafe(_settle, future, ok, value)

    async def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._thread is None:
            raise StoreError("store-closed", "the relay store is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((work, loop, future))
        return await future

    # ------------------------------------------------------------ the interface

    async def register(self, mailbox: bytes, hashed_secret: bytes, quota: Quota, expires: float) -> None:
        def work(db: sqlite3.Connection) -> None:
            row = db.execute("SELECT secret_hash FROM mailboxes WHERE id = ?", (mailbox,)).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO mailboxes (id, secret_hash, max_count, max_bytes, expires)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (mailbox, hashed_secret, quota.max_count, quota.max_bytes, round_expiry(expires)),
                )
            elif row[0] != hashed_secret:
                raise StoreError("mailbox-taken", "that mailbox id belongs to someone else")
            else:
                db.execute(
                    "UPDATE mailboxes SET max_count = ?, max_bytes = ?, expires = ? WHERE id = ?",
                    (quota.max_count, quota.max_bytes, round_expiry(expires), mailbox),
                )

        await self._call(work)

    async def deposit(
        self, mailbox: bytes, envelope_id: bytes, expires: float, body: bytes, now: float
    ) -> bool:
        def work(db: sqlite3.Connection) -> bool:
            row = db.execute(
                "SELECT count, bytes, max_count, max_bytes FROM mailboxes WHERE id = ? AND expires > ?",
                (mailbox, now),
            ).fetchone()
            if row is None:
                raise StoreError("unknown-mailbox", "no such mailbox")
            count, used, max_count, max_bytes = row
            if db.execute(
                "SELECT 1 FROM envelopes WHERE mailbox = ? AND id = ?", (mailbox, envelope_id)
            ).fetchone():
                return False
            if count + 1 > max_count or used + len(body) > max_bytes:
                raise StoreError("over-quota", "the mailbox is full")
            db.execute(
                "INSERT INTO envelopes (mailbox, id, expires, body) VALUES (?, ?, ?, ?)",
                (mailbox, envelope_id, round_expiry(expires), body),
            )
            db.execute(
                "UPDATE mailboxes SET count = count + 1, bytes = bytes + ? WHERE id = ?", (len(body), mailbox)
            )
            return True

        return await self._call(work)

    @staticmethod
    def _check(db: sqlite3.Connection, mailbox: bytes, hashed_secret: bytes) -> None:
        row = db.execute("SELECT secret_hash FROM mailboxes WHERE id = ?", (mailbox,)).fetchone()
        if row is None or row[0] != hashed_secret:
            raise StoreError("forbidden", "no such mailbox, or not its secret")

    async def fetch(self, mailbox: bytes, hashed_secret: bytes, limit: int, now: float) -> list[Stored]:
        def work(db: sqlite3.Connection) -> list[Stored]:
            self._check(db, mailbox, hashed_secret)
            rows = db.execute(
                "SELECT id, expires, body FROM envelopes"
                " WHERE mailbox = ? AND expires > ? ORDER BY seq LIMIT ?",
                (mailbox, now, limit),
            ).fetchall()
            return [Stored(bytes(r[0]), float(r[1]), bytes(r[2])) for r in rows]

        return await self._call(work)

    async def ack(self, mailbox: bytes, hashed_secret: bytes, ids: list[bytes]) -> int:
        def work(db: sqlite3.Connection) -> int:
            self._check(db, mailbox, hashed_secret)
            removed = 0
            for envelope_id in ids:
                row = db.execute(
                    "DELETE FROM envelopes WHERE mailbox = ? AND id = ? RETURNING length(body)",
                    (mailbox, envelope_id),
                ).fetchone()
                if row is not None:
                    removed += 1
                    db.execute(
                        "UPDATE mailboxes SET count = count - 1, bytes = bytes - ? WHERE id = ?",
                        (row[0], mailbox),
                    )
            return removed

        return await self._call(work)

    async def expire(self, now: float) -> int:
        def work(db: sqlite3.Connection) -> int:
            gone = db.execute(
                "SELECT mailbox, COUNT(*), SUM(length(body)) FROM envelopes"
                " WHERE expires <= ? GROUP BY mailbox",
                (now,),
            ).fetchall()
            db.execute("DELETE FROM envelopes WHERE expires <= ?", (now,))
            for mailbox, count, size in gone:
                db.execute(
                    "UPDATE mailboxes SET count = count - ?, bytes = bytes - ? WHERE id = ?",
                    (count, size, mailbox),
                )
            db.execute(
                "DELETE FROM envelopes WHERE mailbox IN (SELECT id FROM mailboxes WHERE expires <= ?)", (now,)
            )
            db.execute("DELETE FROM mailboxes WHERE expires <= ?", (now,))
            return sum(int(c) for _, c, _ in gone)

        return await self._call(work)

    async def stats(self) -> StoreStats:
        def work(db: sqlite3.Connection) -> StoreStats:
            mailboxes = db.execute("SELECT COUNT(*) FROM mailboxes").fetchone()[0]
            count, size = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(length(body)), 0) FROM envelopes"
            ).fetchone()
            return StoreStats(int(mailboxes), int(count), int(size))

        return await self._call(work)


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
