"""The relay store interface, run against every backend (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import os

import pytest

from relay.stores.base import Quota, Store, StoreError, secret_hash
from tests.relay.stores.conftest import run_with_store

NOW = 1_700_000_000.0
DAY = 86400.0
QUOTA = Quota(max_count=10, max_bytes=10 * 4096)


def body(size: int = 1024) -> bytes:
    return os.urandom(size)


async def mailbox(store: Store, quota: Quota = QUOTA) -> tuple[bytes, bytes]:
    box, secret = os.urandom(16), os.urandom(32)
    await store.register(box, secret_hash(secret), quota, NOW + 7 * DAY)
    return box, secret_hash(secret)


def test_deposit_fetch_ack_in_order(store_url: str) -> None:
    async def test(store: Store) -> None:
        box, hashed = await mailbox(store)
        ids = [os.urandom(16) for _ in range(5)]
        bodies = [body() for _ in ids]
        for envelope_id, data in zip(ids, bodies, strict=True):
            assert await store.deposit(box, envelope_id, NOW + DAY, data, NOW) is True
        got = await store.fetch(box, hashed, 100, NOW)
        assert [s.envelope_id for s in got] == ids
        assert [s.body for s in got] == bodies
        assert await store.ack(box, hashed, ids[:2]) == 2
        assert [s.envelope_id for s in await store.fetch(box, hashed, 100, NOW)] == ids[2:]
        stats = await store.stats()
        assert (stats.mailboxes, stats.envelopes, stats.bytes) == (1, 3, 3 * 1024)

    run_with_store(store_url, test)


def test_duplicate_deposit_changes_nothing(store_url: str) -> None:
    async def test(store: Store) -> None:
        box, hashed = await mailbox(store)
        envelope_id = os.urandom(16)
        first = body()
        assert await store.deposit(box, envelope_id, NOW + DAY, first, NOW) is True
        assert await store.deposit(box, envelope_id, NOW + DAY, body(), NOW) is False
        got = await store.fetch(box, hashed, 100, NOW)
        assert [s.body for s in got] == [first]

    run_with_store(store_url, test)


def test_quota_by_count_and_bytes(store_url: str) -> None:
    async def test(store: Store) -> None:
        box, hashed = await mailbox(store, Quota(max_count=3, max_bytes=4096))
        for _ in range(3):
            await store.deposit(box, os.urandom(16), NOW + DAY, body(1024), NOW)
        with pytest.raises(StoreError) as error:
            await store.deposit(box, os.urandom(16), NOW + DAY, body(1024), NOW)
        assert error.value.code == "over-quota"
        box2, _ = await mailbox(store, Quota(max_count=100, max_bytes=4096))
        await store.deposit(box2, os.urandom(16), NOW + DAY, body(2048), NOW)
        with pytest.raises(StoreError, match="full"):
            await store.deposit(box2, os.urandom(16), NOW + DAY, body(4096), NOW)
        assert len(await store.fetch(box, hashed, 100, NOW)) == 3
        # Acknowledging frees the quota.
        first = (await store.fetch(box, hashed, 1, NOW))[0]
        await store.ack(box, hashed, [first.envelope_id])
        assert await store.deposit(box, os.urandom(16), NOW + DAY, body(1024), NOW)

    run_with_store(store_url, test)


def test_wrong_secret_cannot_fetch_or_ack(store_url: str) -> None:
    async def test(store: Store) -> None:
        box, hashed = await mailbox(store)
        envelope_id = os.urandom(16)
        await store.deposit(box, envelope_id, NOW + DAY, body(), NOW)
        for call in (
            store.fetch(box, secret_hash(b"guess"), 10, NOW),
            store.ack(box, secret_hash(b"guess"), [envelope_id]),
            store.fetch(os.urandom(16), hashed, 10, NOW),
        ):
            with pytest.raises(StoreError) as error:
                await call
            assert error.value.code == "forbidden"
        assert len(await store.fetch(box, hashed, 10, NOW)) == 1

    run_with_store(store_url, test)


def test_unknown_mailbox_and_taken_id(store_url: str) -> None:
    async def test(store: Store) -> None:
        with pytest.raises(StoreError) as error:
            await store.deposit(os.urandom(16), os.urandom(16), NOW + DAY, body(), NOW)
        assert error.value.code == "unknown-mailbox"
        box, hashed = await mailbox(store)
        with pytest.raises(StoreError) as error:
            await store.register(box, secret_hash(b"another"), QUOTA, NOW + DAY)
        assert error.value.code == "mailbox-taken"
        await store.register(box, hashed, QUOTA, NOW + 9 * DAY)  # renewal with its own secret

    run_with_store(store_url, test)


def test_replayed_ack_changes_nothing(store_url: str) -> None:
    async def test(store: Store) -> None:
        box, hashed = await mailbox(store)
        ids = [os.urandom(16) for _ in range(3)]
        for envelope_id in ids:
            await store.deposit(box, envelope_id, NOW + DAY, body(), NOW)
        assert await store.ack(box, hashed, [ids[0]]) == 1
        assert await store.ack(box, hashed, [ids[0]]) == 0
        assert len(await store.fetch(box, hashed, 10, NOW)) == 2
        assert (await store.stats()).envelopes == 2

    run_with_store(store_url, test)


def test_expiry_removes_envelopes_and_mailboxes(store_url: str) -> None:
    async def test(store: Store) -> None:
        box, hashed = await mailbox(store)
        await store.deposit(box, os.urandom(16), NOW + 2 * 3600, body(), NOW)
        keep = os.urandom(16)
        await store.deposit(box, keep, NOW + DAY, body(), NOW)
        # An expired envelope is not handed out even before the sweep.
        later = NOW + 3 * 3600 + 1
        assert [s.envelope_id for s in await store.fetch(box, hashed, 10, later)] == [keep]
        assert await store.expire(later) == 1
        assert (await store.stats()).envelopes == 1
        assert await store.expire(NOW + 8 * DAY) == 1
        assert (await store.stats()).mailboxes == 0
        with pytest.raises(StoreError):
            await store.deposit(box, os.urandom(16), NOW + 9 * DAY, body(), NOW + 8 * DAY)

    run_with_store(store_url, test)


def test_expiries_are_kept_to_the_hour(store_url: str) -> None:
    async def test(store: Store) -> None:
        box, hashed = await mailbox(store)
        await store.deposit(box, os.urandom(16), NOW + 12.345, body(), NOW)
        (stored,) = await store.fetch(box, hashed, 10, NOW)
        assert stored.expires % 3600 == 0 and stored.expires >= NOW + 12.345

    run_with_store(store_url, test)


def test_concurrent_deposits_all_land(store_url: str) -> None:
    async def test(store: Store) -> None:
        box, hashed = await mailbox(store, Quota(max_count=10_000, max_bytes=1 << 30))
        ids = [os.urandom(16) for _ in range(500)]
        results = await asyncio.gather(*(store.deposit(box, i, NOW + DAY, body(), NOW) for i in ids))
        assert all(results)
        got = await store.fetch(box, hashed, 1000, NOW)
        assert {s.envelope_id for s in got} == set(ids)

    run_with_store(store_url, test)
