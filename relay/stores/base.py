"""The relay store's interface, its records and its errors.

What a store holds is what a relay may know: mailbox ids (random, chosen by
the recipient), the hash of each mailbox's secret, quotas, and envelopes as
(mailbox, envelope id, expiry rounded up to the hour, bucket-sized
ciphertext).  No sender key, no recipient key, no deposit time.  An envelope
is durable before :meth:`Store.deposit` returns; it is deleted when its
recipient acknowledges it or when it expires.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Protocol

from relay.errors import RelayError


class StoreError(RelayError):
    """A request the store refuses; ``code`` is the stable error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Quota:
    max_count: int
    max_bytes: int


@dataclass(frozen=True, slots=True)
class Stored:
    envelope_id: bytes
    expires: float
    body: bytes


@dataclass(frozen=True, slots=True)
class StoreStats:
    mailboxes: int
    envelopes: int
    bytes: int


EXPIRY_GRANULE_S = 3600.0


def round_expiry(expires: float) -> float:
    """Expiries are kept to the hour (rounded up), so they tell little about when
    a deposit was made."""
    return math.ceil(expires / EXPIRY_GRANULE_S) * EXPIRY_GRANULE_S


def secret_hash(secret: bytes) -> bytes:
    return hashlib.sha256(b"pinewood mailbox secret\x00" + secret).digest()


class Store(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def register(self, mailbox: bytes, hashed_secret: bytes, quota: Quota, expires: float) -> None:
        """Create a mailbox, or renew it (same secret); raises ``mailbox-taken``."""

    async def deposit(
        self, mailbox: bytes, envelope_id: bytes, expires: float, body: bytes, now: float
    ) -> bool:
        """Store durably; False if this id was already there (nothing changes).

        Raises ``unknown-mailbox`` or ``over-quota``."""

    async def fetch(self, mailbox: bytes, hashed_secret: bytes, limit: int, now: float) -> list[Stored]:
        """Unexpired envelopes in deposit order; raises ``forbidden`` on a wrong secret."""

    async def ack(self, mailbox: bytes, hashed_secret: bytes, ids: list[bytes]) -> int:
        """Delete these envelopes; how many there were.  Raises ``forbidden``."""

    async def expire(self, now: float) -> int:
        """Delete expired envelopes and mailboxes; how many envelopes went."""

    async def stats(self) -> StoreStats: ...
