"""The relay service: mailboxes and sealed envelopes over sessions.

It serves streams with ALPN :data:`~relay.protocol.ALPN`, one request after
another on each.  The session tells it which node it talks to; it uses that
only for rate limits and for the number of mailboxes one node may hold, and
never writes it down.  A deposit that arrives sealed through another relay
(``sealed``) reveals only that relay; a ``forward`` asks this relay to be that
intermediate, and it keeps nothing of it.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import assert_never

from relay.envelope import EnvelopeError, is_bucket, open_sealed
from relay.errors import CallError
from relay.messages import (
    Ack,
    Acked,
    Answer,
    AnyRequest,
    Deposit,
    Fetch,
    Fetched,
    FetchedEnvelope,
    Forward,
    Refused,
    Register,
    Registered,
    Sealed,
    Stats,
    Stored,
    Usage,
    decode_request,
    decode_sealed_deposit,
    encode,
)
from relay.protocol import ErrorCode, ProtocolError, error_code
from relay.stores.base import Quota, Store, StoreError, StoreStats, secret_hash
from relay.streams import call, read_message
from router.logs import get_logger
from router.routing.budget import TokenBucket
from router.sessions.runtime import Sessions
from router.sessions.stream import SessionStream
from router.wire.keys import Identity

log = get_logger("pinewood.relay")

DAY = 86400.0
FETCH_MAX = 100
FORWARD_TIMEOUT_S = 15.0
FETCH_ANSWER_BYTES = 15 * (1 << 20)
"""How many envelope bytes one fetch answers with (at least one envelope)."""


@dataclass(frozen=True, slots=True)
class RelayLimits:
    max_expiry_s: float = 7 * DAY
    mailbox_max_count: int = 10_000
    mailbox_max_bytes: int = 256 << 20
    mailboxes_per_node: int = 16
    requests_per_second: float = 2000.0
    burst: float = 4000.0


STATS_MAX_AGE_S = 10.0
"""How stale the store's figures on the admin API and metrics may be."""


class RelayService:
    def __init__(
        self,
        identity: Identity,
        store: Store,
        sessions: Sessions,
        limits: RelayLimits,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.identity = identity
        self.store = store
        self.sessions = sessions
        self.limits = limits
        self.clock = clock
        self.counters: Counter[str] = Counter()
        self._buckets: OrderedDict[bytes, TokenBucket] = OrderedDict()
        self._mailboxes_by_node: OrderedDict[bytes, set[bytes]] = OrderedDict()
        self._stats: tuple[float, StoreStats] | None = None

    async def store_stats(self, max_age_s: float = STATS_MAX_AGE_S) -> StoreStats:
        """The store's figures, read at most once every ``max_age_s`` (counting a
        large store's bytes reads every envelope; a status page open in a browser
        and a metrics scraper would otherwise ask every few seconds each)."""
        now = self.clock()
        if self._stats is None or not 0 <= now - self._stats[0] < max_age_s:
            self._stats = (now, await self.store.stats())
        return self._stats[1]

    async def handle(self, stream: SessionStream) -> None:
        """Serve one stream: requests until the peer finishes.

        A request that is slow to arrive ends the stream, counted; a broken
        stream's :class:`~router.sessions.errors.SessionError` goes back to the
        sessions layer that called this, which counts it."""
        while True:
            try:
                body = await read_message(stream)
            except ProtocolError as exc:
                self._reject(exc.code)
                stream.write(encode(Refused(exc.code, str(exc))))
                stream.write_eof()
                return
            except TimeoutError:
                self._reject(ErrorCode.TIMEOUT)
                stream.abort()
                return
            if body is None:
                stream.write_eof()
                return
            answer = await self.answer(stream.key, body)
            stream.write(encode(answer))
            await stream.drain()

    async def answer(self, peer: bytes, body: bytes) -> Answer:
        """The answer to one request from the node with key ``peer``."""
        now = self.clock()
        if not self._bucket(peer, now).take(time.monotonic()):
            self._reject(ErrorCode.RATE_LIMITED)
            return Refused(ErrorCode.RATE_LIMITED, "too many requests; slow down")
        try:
            request = decode_request(body)
            answer = await self._dispatch(request, peer, now)
        except ProtocolError as exc:
            answer = Refused(exc.code, str(exc))
        except StoreError as exc:
            answer = Refused(error_code(exc.code), str(exc))
        if isinstance(answer, Refused):
            self._reject(answer.code)
        else:
            self.counters[f"{request.op} ok"] += 1
        return answer

    # ------------------------------------------------------------ operations

    async def _dispatch(self, request: AnyRequest, peer: bytes, now: float) -> Answer:
        match request:
            case Register():
                return await self._register(peer, request, now)
            case Deposit():
                return await self._deposit(request, now)
            case Sealed():
                try:
                    opened = open_sealed(self.identity, request.sealed)
                except EnvelopeError as exc:
                    raise ProtocolError(ErrorCode.BAD_SEAL, str(exc)) from None
                return await self._deposit(decode_sealed_deposit(opened), now)
            case Forward():
                return await self._forward(request)
            case Fetch():
                return await self._fetch(request, now)
            case Ack():
                removed = await self.store.ack(
                    request.mailbox, secret_hash(request.secret), list(request.ids)
                )
                return Acked(removed)
            case Stats():
                # This mailbox only, and only for its owner.
                hashed = secret_hash(request.secret)
                stored = await self.store.fetch(request.mailbox, hashed, FETCH_MAX, now)
                return Usage(len(stored), sum(len(s.body) for s in stored))
            case _:
                assert_never(request)

    async def _register(self, peer: bytes, request: Register, now: float) -> Registered:
        mailbox = request.mailbox
        held = self._mailboxes_by_node.setdefault(peer, set())
        self._mailboxes_by_node.move_to_end(peer)
        if mailbox not in held and len(held) >= self.limits.mailboxes_per_node:
            raise ProtocolError(
                ErrorCode.TOO_MANY_MAILBOXES, "this node holds as many mailboxes here as it may"
            )
        while len(self._mailboxes_by_node) > 100_000:
            self._mailboxes_by_node.popitem(last=False)
        expires = min(float(request.expires), now + self.limits.max_expiry_s)
        if expires <= now:
            raise ProtocolError(ErrorCode.EXPIRED, "a mailbox must expire in the future")
        quota = Quota(self.limits.mailbox_max_count, self.limits.mailbox_max_bytes)
        await self.store.register(mailbox, secret_hash(request.secret), quota, expires)
        held.add(mailbox)
        return Registered(int(expires), quota.max_count, quota.max_bytes)

    async def _deposit(self, request: Deposit, now: float) -> Stored:
        body = request.body
        if not is_bucket(len(body)):
            raise ProtocolError(ErrorCode.BAD_SIZE, f"{len(body)} bytes is not an envelope size")
        expires = float(request.expires)
        if expires <= now:
            raise ProtocolError(ErrorCode.EXPIRED, "the envelope has expired")
        expires = min(expires, now + self.limits.max_expiry_s)
        stored = await self.store.deposit(request.mailbox, request.envelope_id, expires, body, now)
        self.counters["envelopes stored" if stored else "duplicate deposits"] += 1
        self.counters["bytes stored"] += len(body) if stored else 0
        return Stored(stored)

    async def _fetch(self, request: Fetch, now: float) -> Fetched:
        limit = max(1, min(FETCH_MAX, request.limit))
        stored = await self.store.fetch(request.mailbox, secret_hash(request.secret), limit, now)
        budget, out = FETCH_ANSWER_BYTES, list[FetchedEnvelope]()
        for item in stored:
            budget -= len(item.body)
            if budget < 0 and out:
                break
            out.append(FetchedEnvelope(item.envelope_id, int(item.expires), item.body))
        return Fetched(tuple(out))

    async def _forward(self, request: Forward) -> Stored | Refused:
        """The next relay's answer to the sealed deposit, passed back as it came."""
        if request.relay == bytes(self.identity.public_key):
            raise ProtocolError(ErrorCode.BAD_FORWARD, "forward to another relay, not to this one")
        try:
            answer = await call(self.sessions, request.relay, Sealed(request.sealed), FORWARD_TIMEOUT_S)
        except CallError as exc:
            raise ProtocolError(ErrorCode.RELAY_UNREACHABLE, f"cannot reach the next relay: {exc}") from None
        except ProtocolError as exc:
            raise ProtocolError(
                ErrorCode.RELAY_UNREACHABLE, f"the next relay answered badly: {exc}"
            ) from None
        self.counters["forwards"] += 1
        return answer

    # ------------------------------------------------------------ accounting

    def _bucket(self, peer: bytes, now: float) -> TokenBucket:
        bucket = self._buckets.get(peer)
        if bucket is None:
            bucket = TokenBucket(self.limits.requests_per_second, self.limits.burst, time.monotonic())
            self._buckets[peer] = bucket
            while len(self._buckets) > 10_000:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(peer)
        return bucket

    def _reject(self, code: ErrorCode | str) -> None:
        self.counters[f"rejected: {code}"] += 1

    async def sweep(self) -> int:
        removed = await self.store.expire(self.clock())
        self.counters["envelopes expired"] += removed
        return removed
