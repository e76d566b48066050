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
from typing import Any

import msgpack
import structlog

from relay.envelope import EnvelopeError, is_bucket, open_sealed
from relay.protocol import (
    ProtocolError,
    check_request,
    decode_body,
    encode,
    error,
)
from relay.stores.base import Quota, Store, StoreError, StoreStats, secret_hash
from relay.streams import call, read_message
from router.routing.budget import TokenBucket
from router.sessions.errors import SessionError
from router.sessions.runtime import Sessions
from router.sessions.stream import SessionStream
from router.wire.keys import Identity

log = structlog.get_logger("relay")

DAY = 86400.0
FETCH_MAX = 100
FORWARD_TIMEOUT_S = 15.0


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
        """Serve one stream: requests until the peer finishes."""
        while True:
            try:
                body = await read_message(stream)
            except ProtocolError as exc:
                self._reject(exc.code)
                stream.write(encode(error(exc.code, str(exc))))
                stream.write_eof()
                return
            except TimeoutError:
                self._reject("timeout")
                stream.abort()
                return
            if body is None:
                stream.write_eof()
                return
            answer = await self.answer(stream.key, body)
            stream.write(encode(answer))
            await stream.drain()

    async def answer(self, peer: bytes, body: bytes) -> dict[str, Any]:
        """The answer to one request from the node with key ``peer``."""
        now = self.clock()
        if not self._bucket(peer, now).take(time.monotonic()):
            self._reject("rate-limited")
            return error("rate-limited", "too many requests; slow down")
        try:
            request = decode_body(body)
            op = check_request(request)
            result = await self._dispatch(op, peer, request, now)
        except ProtocolError as exc:
            self._reject(exc.code)
            return error(exc.code, str(exc))
        except StoreError as exc:
            self._reject(exc.code)
            return error(exc.code, str(exc))
        self.counters[f"{op} ok"] += 1
        return {"ok": True, **result}

    # ------------------------------------------------------------ operations

    async def _dispatch(self, op: str, peer: bytes, request: dict[str, Any], now: float) -> dict[str, Any]:
        if op == "register":
            return await self._register(peer, request, now)
        if op == "deposit":
            return await self._deposit(request, now)
        if op == "sealed":
            try:
                inner = decode_body(open_sealed(self.identity, request["sealed"]))
            except EnvelopeError as exc:
                raise ProtocolError("bad-seal", str(exc)) from None
            inner["op"] = "deposit"
            check_request(inner)
            return await self._deposit(inner, now)
        if op == "forward":
            return await self._forward(request)
        hashed = secret_hash(request["secret"])
        if op == "fetch":
            limit = max(1, min(FETCH_MAX, request["limit"]))
            stored = await self.store.fetch(request["mailbox"], hashed, limit, now)
            budget, out = 15 * (1 << 20), list[list[Any]]()
            for item in stored:
                budget -= len(item.body)
                if budget < 0 and out:
                    break
                out.append([item.envelope_id, int(item.expires), item.body])
            return {"envelopes": out}
        if op == "ack":
            return {"removed": await self.store.ack(request["mailbox"], hashed, list(request["ids"]))}
        # stats: this mailbox only, and only for its owner
        stored = await self.store.fetch(request["mailbox"], hashed, FETCH_MAX, now)
        return {"envelopes": len(stored), "bytes": sum(len(s.body) for s in stored)}

    async def _register(self, peer: bytes, request: dict[str, Any], now: float) -> dict[str, Any]:
        mailbox = request["mailbox"]
        held = self._mailboxes_by_node.setdefault(peer, set())
        self._mailboxes_by_node.move_to_end(peer)
        if mailbox not in held and len(held) >= self.limits.mailboxes_per_node:
            raise ProtocolError("too-many-mailboxes", "this node holds as many mailboxes here as it may")
        while len(self._mailboxes_by_node) > 100_000:
            self._mailboxes_by_node.popitem(last=False)
        expires = min(float(request["expires"]), now + self.limits.max_expiry_s)
        if expires <= now:
            raise ProtocolError("expired", "a mailbox must expire in the future")
        quota = Quota(self.limits.mailbox_max_count, self.limits.mailbox_max_bytes)
        await self.store.register(mailbox, secret_hash(request["secret"]), quota, expires)
        held.add(mailbox)
        return {"expires": int(expires), "max_count": quota.max_count, "max_bytes": quota.max_bytes}

    async def _deposit(self, request: dict[str, Any], now: float) -> dict[str, Any]:
        body = request["body"]
        if not is_bucket(len(body)):
            raise ProtocolError("bad-size", f"{len(body)} bytes is not an envelope size")
        expires = float(request["expires"])
        if expires <= now:
            raise ProtocolError("expired", "the envelope has expired")
        expires = min(expires, now + self.limits.max_expiry_s)
        stored = await self.store.deposit(request["mailbox"], request["id"], expires, body, now)
        self.counters["envelopes stored" if stored else "duplicate deposits"] += 1
        self.counters["bytes stored"] += len(body) if stored else 0
        return {"stored": stored}

    async def _forward(self, request: dict[str, Any]) -> dict[str, Any]:
        relay = request["relay"]
        if relay == bytes(self.identity.public_key):
            raise ProtocolError("bad-forward", "forward to another relay, not to this one")
        try:
            answer = await call(
                self.sessions, relay, {"op": "sealed", "sealed": request["sealed"]}, FORWARD_TIMEOUT_S
            )
        except (SessionError, TimeoutError) as exc:
            raise ProtocolError("relay-unreachable", f"cannot reach the next relay: {exc}") from None
        except (ProtocolError, msgpack.ExtraData) as exc:
            raise ProtocolError("relay-unreachable", f"the next relay answered badly: {exc}") from None
        self.counters["forwards"] += 1
        if not answer.get("ok"):
            raise ProtocolError(str(answer.get("code", "relay-error")), str(answer.get("message", "")))
        return {"stored": bool(answer.get("stored"))}

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

    def _reject(self, code: str) -> None:
        self.counters[f"rejected: {code}"] += 1

    async def sweep(self) -> int:
        removed = await self.store.expire(self.clock())
        self.counters["envelopes expired"] += removed
        return removed
