"""What only the PostgreSQL store has to get right: several relay processes on
one database, a server that is not there, durability settings, the schema."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from bench.postgres import postgres_dump, postgres_url
from relay.stores.base import Quota, StoreError, secret_hash
from relay.stores.postgres import PostgresStore
from relay.stores.sqlite import SCHEMA as SQLITE_SCHEMA

NOW = 1_700_000_000.0
DAY = 86400.0


async def two_stores(url: str) -> tuple[PostgresStore, PostgresStore]:
    """Two stores on one database, as two relay processes would have."""
    first, second = PostgresStore(url), PostgresStore(url)
    await asyncio.gather(first.open(), second.open())  # both create the schema at once
    return first, second


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port bound but not listening while the block runs: connections are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


async def counters_match(url: str) -> None:
    """Each mailbox's count and bytes are exactly what it holds."""
    db = await asyncpg.connect(url)
    try:
        wrong = await db.fetch(
            "SELECT m.id FROM mailboxes m LEFT JOIN (SELECT mailbox, count(*) AS count,"
            " sum(octet_length(body)) AS bytes FROM envelopes GROUP BY mailbox) e ON e.mailbox = m.id"
            " WHERE m.count <> COALESCE(e.count, 0) OR m.bytes <> COALESCE(e.bytes, 0)"
        )
    finally:
        await db.close()
    assert wrong == []


def test_two_processes_never_exceed_a_quota(tmp_path: Path) -> None:
    url = postgres_url(tmp_path.name)

    async def main() -> None:
        first, second = await two_stores(url)
        try:
            box, hashed = os.urandom(16), secret_hash(b"secret")
            await first.register(box, hashed, Quota(max_count=30, max_bytes=1 << 20), NOW + DAY)

            async def deposit(store: PostgresStore) -> bool:
                try:
                    return await store.deposit(box, os.urandom(16), NOW + DAY, os.urandom(512), NOW)
                except StoreError as exc:
                    assert exc.code == "over-quota"
                    return False

            results = await asyncio.gather(*(deposit(s) for _ in range(60) for s in (first, second)))
            assert sum(results) == 30
            held = await second.fetch(box, hashed, 1000, NOW)
            assert len(held) == 30
            await counters_match(url)
            # Acknowledging in one process frees the quota for the other.
            assert await first.ack(box, hashed, [s.envelope_id for s in held[:10]]) == 10
            results = await asyncio.gather(*(deposit(s) for _ in range(20) for s in (second, first)))
            assert sum(results) == 10
            await counters_match(url)
        finally:
            await asyncio.gather(first.close(), second.close())

    asyncio.run(main())


def test_the_same_envelope_from_two_processes_lands_once(tmp_path: Path) -> None:
    url = postgres_url(tmp_path.name)

    async def main() -> None:
        first, second = await two_stores(url)
        try:
            box, hashed = os.urandom(16), secret_hash(b"secret")
            await first.register(box, hashed, Quota(max_count=1000, max_bytes=1 << 24), NOW + DAY)
            ids = [os.urandom(16) for _ in range(100)]
            results = await asyncio.gather(
                *(s.deposit(box, i, NOW + DAY, os.urandom(256), NOW) for i in ids for s in (first, second))
            )
            assert [a + b for a, b in zip(results[::2], results[1::2], strict=True)] == [1] * len(ids)
            assert {s.envelope_id for s in await first.fetch(box, hashed, 1000, NOW)} == set(ids)
            assert (await second.stats()).envelopes == len(ids)
            await counters_match(url)
        finally:
            await asyncio.gather(first.close(), second.close())

    asyncio.run(main())


def test_deposits_acks_and_sweeps_at_once_keep_counters_exact(tmp_path: Path) -> None:
    url = postgres_url(tmp_path.name)

    async def main() -> None:
        first, second = await two_stores(url)
        try:
            boxes = [(os.urandom(16), secret_hash(os.urandom(8))) for _ in range(8)]
            for i, (box, hashed) in enumerate(boxes):
                # Half the mailboxes expire in the sweep below.
                await first.register(box, hashed, Quota(1000, 1 << 24), NOW + (1 if i % 2 else 3) * DAY)

            async def churn(store: PostgresStore, box: bytes, hashed: bytes) -> None:
                for round_ in range(10):
                    expires = NOW + (3600 if round_ % 3 == 0 else DAY)
                    try:
                        await store.deposit(box, os.urandom(16), expires, os.urandom(300), NOW)
                        held = await store.fetch(box, hashed, 3, NOW)
                        await store.ack(box, hashed, [s.envelope_id for s in held[:1]])
                    except StoreError as exc:
                        assert exc.code in {"unknown-mailbox", "forbidden"}  # swept meanwhile

            async def sweep(store: PostgresStore) -> None:
                for step in range(10):
                    await store.expire(NOW + 2 * 3600 + step * DAY / 5)

            await asyncio.gather(
                *(churn(s, box, hashed) for box, hashed in boxes for s in (first, second)),
                sweep(first),
                sweep(second),
            )
            await counters_match(url)
            assert (await first.stats()).mailboxes == 4
        finally:
            await asyncio.gather(first.close(), second.close())

    asyncio.run(main())


def test_no_server_is_store_unavailable() -> None:
    async def main() -> None:
        with refused_port() as port:
            store = PostgresStore(f"postgresql://relay:hunter2@127.0.0.1:{port}/relay")
            with pytest.raises(StoreError) as error:
                await store.open()
        assert error.value.code == "store-unavailable"
        assert "cannot connect" in str(error.value) and "127.0.0.1" in str(error.value)
        assert "hunter2" not in str(error.value)
        with pytest.raises(StoreError) as error:
            await store.deposit(os.urandom(16), os.urandom(16), NOW + DAY, b"x", NOW)
        assert error.value.code == "store-closed"

    asyncio.run(main())


def test_a_missing_database_is_store_unavailable(tmp_path: Path) -> None:
    url = postgres_url(tmp_path.name) + "_missing"

    async def main() -> None:
        with pytest.raises(StoreError) as error:
            await PostgresStore(url).open()
        assert error.value.code == "store-unavailable"
        assert "does not exist" in str(error.value)

    asyncio.run(main())


def test_commits_stay_synchronous(tmp_path: Path) -> None:
    """Durable before answering, even where the database or the URL says otherwise."""
    url = postgres_url(tmp_path.name)
    database = url.rpartition("/")[2]

    async def main() -> None:
        db = await asyncpg.connect(url)
        try:
            await db.execute(f'ALTER DATABASE "{database}" SET synchronous_commit = off')
        finally:
            await db.close()
        for store_url in (url, url + "?synchronous_commit=off"):
            store = PostgresStore(store_url)
            await store.open()
            try:
                setting = await store._run(lambda db: db.fetchval("SHOW synchronous_commit"))
                assert setting == "on"
            finally:
                await store.close()

    asyncio.run(main())


def test_same_columns_as_sqlite_and_nothing_more(tmp_path: Path) -> None:
    url = postgres_url(tmp_path.name)
    lite = sqlite3.connect(":memory:")
    lite.executescript(SQLITE_SCHEMA)
    want = {
        table: [row[1] for row in lite.execute(f"PRAGMA table_info({table})")]
        for table in ("mailboxes", "envelopes")
    }

    async def main() -> None:
        store = PostgresStore(url)
        await store.open()
        box, hashed = os.urandom(16), secret_hash(b"secret")
        body = os.urandom(64)
        try:
            await store.register(box, hashed, Quota(10, 4096), NOW + DAY)
            await store.deposit(box, os.urandom(16), NOW + DAY, body, NOW)
        finally:
            await store.close()
        db = await asyncpg.connect(url)
        try:
            rows = await db.fetch(
                "SELECT table_name, column_name FROM information_schema.columns"
                " WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
            )
        finally:
            await db.close()
        got: dict[str, list[str]] = {}
        for row in rows:
            got.setdefault(row["table_name"], []).append(row["column_name"])
        assert got == want
        dump = postgres_dump(url)
        assert b"CREATE TABLE public.envelopes" in dump
        assert body.hex().encode() in dump  # data included (bytea as hex)

    asyncio.run(main())
