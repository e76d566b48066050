"""The PostgreSQL relay store: shared by any number of relay processes.

Same tables, same answers as the SQLite store.  Every change commits before
it is answered, with ``synchronous_commit`` forced on for the store's
connections, so a deposit that returned is on the server's disk.

Deposits are committed in groups: while one group's transaction runs, new
deposits queue up; the next turn takes everything waiting and settles it in
one transaction with a handful of statements, whatever its size.  Quotas hold
across processes because every change to a mailbox's counters first locks
its row (``SELECT ... FOR UPDATE``, several rows always in id order, so two
writers never wait on each other in a circle); a deadlock or serialization
failure the server reports anyway is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias, TypeVar

import asyncpg
import asyncpg.exceptions

from relay.stores.base import Quota, Stored, StoreError, StoreStats, round_expiry

T = TypeVar("T")
MAX_BATCH = 2048
POOL_SIZE = 10
CONNECT_TIMEOUT_S = 10.0
RETRIES = 5

# The columns are the SQLite store's, nothing more.
SCHEMA = """
CREATE TABLE IF NOT EXISTS mailboxes (
    id bytea PRIMARY KEY,
    secret_hash bytea NOT NULL,
    max_count bigint NOT NULL,
    max_bytes bigint NOT NULL,
    count bigint NOT NULL DEFAULT 0,
    bytes bigint NOT NULL DEFAULT 0,
    expires double precision NOT NULL
);
CREATE TABLE IF NOT EXISTS envelopes (
    seq bigserial PRIMARY KEY,
    mailbox bytea NOT NULL,
    id bytea NOT NULL,
    expires double precision NOT NULL,
    body bytea NOT NULL,
    UNIQUE (mailbox, id)
);
CREATE INDEX IF NOT EXISTS envelopes_by_mailbox ON envelopes (mailbox, seq);
CREATE INDEX IF NOT EXISTS envelopes_by_expiry ON envelopes (expires);
"""
# Serializes schema creation between processes opening the same database at once.
SCHEMA_LOCK = 0x50494E45574F4F44  # "PINEWOOD"

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = PoolConnectionProxy[asyncpg.Record]

UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
)
RETRYABLE = (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError)


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = urllib.parse.quote(parts.username or "", safe="")
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


@dataclass(slots=True)
class _Deposit:
    mailbox: bytes
    envelope_id: bytes
    expires: float
    body: bytes
    now: float
    future: asyncio.Future[bool] = field(repr=False)


class PostgresStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self._pool: asyncpg.Pool | None = None
        self._pending: list[_Deposit] = []
        self._flusher: asyncio.Task[None] | None = None
        self.batches = 0

    # ------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        try:
            pool = await asyncpg.create_pool(
                self.url,
                min_size=1,
                max_size=POOL_SIZE,
                timeout=CONNECT_TIMEOUT_S,
                # Durable before answering, whatever the database or role default says.
                server_settings={"synchronous_commit": "on"},
            )
        except Exception as exc:
            raise StoreError(
                "store-unavailable", f"relay store {redacted(self.url)}: cannot connect: {_describe(exc)}"
            ) from exc
        try:
            async with pool.acquire() as db, db.transaction():
                await db.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
                await db.execute(SCHEMA)
        except Exception as exc:
            await pool.close()
            raise StoreError(
                "store-unavailable", f"relay store {redacted(self.url)}: cannot create the schema: {exc}"
            ) from exc
        self._pool = pool

    async def close(self) -> None:
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await self._flusher
            self._flusher = None
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    # ------------------------------------------------------------ plumbing

    async def _run(self, work: Callable[[Connection], Awaitable[T]]) -> T:
        """Run ``work`` in one transaction on a pooled connection, retrying on
        deadlock or serialization failure, with store errors for driver ones."""
        if self._pool is None:
            raise StoreError("store-closed", "the relay store is not open")
        for attempt in range(RETRIES):
            try:
                async with self._pool.acquire() as db, db.transaction():
                    return await work(db)
            except RETRYABLE:
                if attempt == RETRIES - 1:
                    raise StoreError("store-error", "the relay store stayed contended; try again") from None
                await asyncio.sleep(0.01 * (attempt + 1))
            except StoreError:
                raise
            except UNAVAILABLE as exc:
                raise StoreError(
                    "store-unavailable", f"relay store {redacted(self.url)}: {_describe(exc)}"
                ) from exc
            except asyncpg.PostgresError as exc:
                raise StoreError("store-error", str(exc)) from exc
        raise AssertionError("unreachable")

    # ------------------------------------------------------------ the interface

    async def register(self, mailbox: bytes, hashed_secret: bytes, quota: Quota, expires: float) -> None:
        async def work(db: Connection) -> None:
            # Insert, or renew when the secret matches; no row back means someone else's.
            row = await db.fetchrow(
                "INSERT INTO mailboxes AS m (id, secret_hash, max_count, max_bytes, expires)"
                " VALUES ($1, $2, $3, $4, $5)"
                " ON CONFLICT (id) DO UPDATE SET max_count = EXCLUDED.max_count,"
                " max_bytes = EXCLUDED.max_bytes, expires = EXCLUDED.expires"
                " WHERE m.secret_hash = EXCLUDED.secret_hash"
                " RETURNING 1",
                mailbox,
                hashed_secret,
                quota.max_count,
                quota.max_bytes,
                round_expiry(expires),
            )
            if row is None:
                raise StoreError("mailbox-taken", "that mailbox id belongs to someone else")

        await self._run(work)

    async def deposit(
        self, mailbox: bytes, envelope_id: bytes, expires: float, body: bytes, now: float
    ) -> bool:
        if self._pool is None:
            raise StoreError("store-closed", "the relay store is not open")
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append(_Deposit(mailbox, envelope_id, round_expiry(expires), body, now, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="relay-postgres-deposits")
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                outcomes = await self._run(functools.partial(self._deposit_batch, batch=batch))
            except Exception as exc:
                failure = exc if isinstance(exc, StoreError) else StoreError("store-error", str(exc))
                outcomes = [failure] * len(batch)
            self.batches += 1
            for job, outcome in zip(batch, outcomes, strict=True):
                if job.future.done():
                    continue
                if isinstance(outcome, StoreError):
                    job.future.set_exception(outcome)
                else:
                    job.future.set_result(outcome)

    @staticmethod
    async def _deposit_batch(db: Connection, batch: list[_Deposit]) -> list[bool | StoreError]:
        """Settle a group of deposits in one transaction, each as if alone, in order."""
        boxes = sorted({job.mailbox for job in batch})
        rows = await db.fetch(
            "SELECT id, count, bytes, max_count, max_bytes, expires FROM mailboxes"
            " WHERE id = ANY($1::bytea[]) ORDER BY id FOR UPDATE",
            boxes,
        )
        usage = {bytes(r["id"]): [r["count"], r["bytes"], r["max_count"], r["max_bytes"]] for r in rows}
        expiry = {bytes(r["id"]): float(r["expires"]) for r in rows}
        present = await db.fetch(
            "SELECT e.mailbox, e.id FROM envelopes e"
            " JOIN unnest($1::bytea[], $2::bytea[]) AS k(mailbox, id)"
            " ON e.mailbox = k.mailbox AND e.id = k.id",
            [job.mailbox for job in batch],
            [job.envelope_id for job in batch],
        )
        seen = {(bytes(r["mailbox"]), bytes(r["id"])) for r in present}
        outcomes: list[bool | StoreError] = []
        accepted: list[_Deposit] = []
        for job in batch:
            if job.mailbox not in usage or expiry[job.mailbox] <= job.now:
                outcomes.append(StoreError("unknown-mailbox", "no such mailbox"))
                continue
            if (job.mailbox, job.envelope_id) in seen:
                outcomes.append(False)
                continue
            counters = usage[job.mailbox]
            if counters[0] + 1 > counters[2] or counters[1] + len(job.body) > counters[3]:
                outcomes.append(StoreError("over-quota", "the mailbox is full"))
                continue
            counters[0] += 1
            counters[1] += len(job.body)
            seen.add((job.mailbox, job.envelope_id))
            accepted.append(job)
            outcomes.append(True)
        if accepted:
            # WITH ORDINALITY ... ORDER BY: seq follows the order deposits arrived in.
            await db.execute(
                "INSERT INTO envelopes (mailbox, id, expires, body)"
                " SELECT mailbox, id, expires, body"
                " FROM unnest($1::bytea[], $2::bytea[], $3::float8[], $4::bytea[])"
                " WITH ORDINALITY AS t(mailbox, id, expires, body, n) ORDER BY n",
                [job.mailbox for job in accepted],
                [job.envelope_id for job in accepted],
                [job.expires for job in accepted],
                [job.body for job in accepted],
            )
            changed = sorted({job.mailbox for job in accepted})
            await db.execute(
                "UPDATE mailboxes AS m SET count = u.count, bytes = u.bytes"
                " FROM unnest($1::bytea[], $2::int8[], $3::int8[]) AS u(id, count, bytes)"
                " WHERE m.id = u.id",
                changed,
                [usage[box][0] for box in changed],
                [usage[box][1] for box in changed],
            )
        return outcomes

    @staticmethod
    async def _check(db: Connection, mailbox: bytes, hashed_secret: bytes, lock: bool) -> None:
        row = await db.fetchrow(
            "SELECT secret_hash FROM mailboxes WHERE id = $1" + (" FOR UPDATE" if lock else ""), mailbox
        )
        if row is None or bytes(row["secret_hash"]) != hashed_secret:
            raise StoreError("forbidden", "no such mailbox, or not its secret")

    async def fetch(self, mailbox: bytes, hashed_secret: bytes, limit: int, now: float) -> list[Stored]:
        async def work(db: Connection) -> list[Stored]:
            await self._check(db, mailbox, hashed_secret, lock=False)
            rows = await db.fetch(
                "SELECT id, expires, body FROM envelopes"
                " WHERE mailbox = $1 AND expires > $2 ORDER BY seq LIMIT $3",
                mailbox,
                now,
                limit,
            )
            return [Stored(bytes(r["id"]), float(r["expires"]), bytes(r["body"])) for r in rows]

        return await self._run(work)

    async def ack(self, mailbox: bytes, hashed_secret: bytes, ids: list[bytes]) -> int:
        async def work(db: Connection) -> int:
            await self._check(db, mailbox, hashed_secret, lock=True)
            removed: int = await db.fetchval(
                "WITH gone AS (DELETE FROM envelopes WHERE mailbox = $1 AND id = ANY($2::bytea[])"
                " RETURNING octet_length(body) AS size),"
                " total AS (SELECT count(*) AS count, COALESCE(sum(size), 0) AS bytes FROM gone),"
                " counted AS (UPDATE mailboxes AS m SET count = m.count - total.count,"
                " bytes = m.bytes - total.bytes FROM total WHERE m.id = $1 AND total.count > 0)"
                " SELECT count FROM total",
                mailbox,
                ids,
            )
            return int(removed)

        return await self._run(work)

    async def expire(self, now: float) -> int:
        async def work(db: Connection) -> int:
            # Lock every mailbox this touches first, in id order, like deposits do.
            await db.execute(
                "SELECT id FROM mailboxes WHERE expires <= $1"
                " OR id IN (SELECT mailbox FROM envelopes WHERE expires <= $1)"
                " ORDER BY id FOR UPDATE",
                now,
            )
            gone: int = await db.fetchval(
                "WITH gone AS (DELETE FROM envelopes WHERE expires <= $1"
                " RETURNING mailbox, octet_length(body) AS size),"
                " per AS (SELECT mailbox, count(*) AS count, sum(size) AS bytes FROM gone GROUP BY mailbox),"
                " counted AS (UPDATE mailboxes AS m SET count = m.count - per.count,"
                " bytes = m.bytes - per.bytes FROM per WHERE m.id = per.mailbox)"
                " SELECT COALESCE(sum(count), 0) FROM per",
                now,
            )
            await db.execute(
                "DELETE FROM envelopes WHERE mailbox IN (SELECT id FROM mailboxes WHERE expires <= $1)", now
            )
            await db.execute("DELETE FROM mailboxes WHERE expires <= $1", now)
            return int(gone)

        return await self._run(work)

    async def stats(self) -> StoreStats:
        async def work(db: Connection) -> StoreStats:
            row = await db.fetchrow(
                "SELECT (SELECT count(*) FROM mailboxes) AS mailboxes, count(*) AS envelopes,"
                " COALESCE(sum(octet_length(body)), 0) AS bytes FROM envelopes"
            )
            assert row is not None
            return StoreStats(int(row["mailboxes"]), int(row["envelopes"]), int(row["bytes"]))

        return await self._run(work)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
