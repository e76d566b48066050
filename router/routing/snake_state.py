"""The virtual snake as one node runs it: bootstraps out, bootstraps in (checked,
installed, passed on), and route entries that expire (reference:
``router/state_snek.go``).  The next-hop decision is :func:`router.routing.snek.next_hop_snek`.
"""

from __future__ import annotations

from router.routing.snek import SnakeEntry
from router.routing.state import RoutingState
from router.routing.tree import (
    LOCAL_PORT,
)
from router.wire.errors import DecodeError
from router.wire.frames import (
    BootstrapFrame,
    encode_frame,
)
from router.wire.keys import PublicKey
from router.wire.snake import (
    FULL_WATERMARK,
    BootstrapBody,
    SignedRootStamp,
    decode_bootstrap,
    sign_bootstrap,
)


class SnakeState(RoutingState):
    """The snake part of a node's routing."""

    def _maintain_snake(self, now: float) -> None:
        root = self.root()
        desc = self.descending
        if desc is not None and (not desc.valid(now) or desc.root != root):
            self._set_descending(None, now)
        expired = [e.key for e in self.routes.ordered if not e.valid(now)]
        for key in expired:
            del self.routes[key]
        if self._notices_passed:
            # Only paths we still hold, at the sequence a notice was passed on for.
            passed = self._notices_passed
            for key in [k for k, s in passed.items() if (e := self.routes.get(k)) is None or e.sequence != s]:
                del passed[key]
        if expired:
            self._changed()
        if now - self._last_bootstrap >= self._bootstrap_interval(now):
            self._bootstrap_now(now)

    def _bootstrap_now(self, now: float) -> None:
        if self.parent is None:
            return  # the root has nobody above it to bootstrap towards
        root_key, root_sequence = self.root()
        sequence = self._sequence_ms(now)
        if self.config.sign:
            body = sign_bootstrap(self.identity, sequence, root_key, root_sequence).encode()
        else:
            body = SignedRootStamp.protected(sequence, root_key, root_sequence) + bytes(64)
        port, watermark = self.snek(self.key, FULL_WATERMARK, bootstrap=True, now=now)
        if port is not None and port != LOCAL_PORT:
            self.stats["bootstraps sent"] += 1
            before = (self._last_bootstrap_port, self._last_bootstrap_sequence)
            self._last_bootstrap_port, self._last_bootstrap_sequence = port, sequence
            self.send(port, encode_frame(BootstrapFrame(self.key, watermark, body)), now)
            self._bootstrap_replaced(*before, now)
        self._last_bootstrap = now

    def _handle_bootstrap_frame(self, port: int, frame: BootstrapFrame, now: float) -> None:
        """A bootstrap, checked and installed at every hop, then passed on (reference
        ``_handleBootstrap``).  The cheap checks come first, then the signature
        (a failure closes the peer: honest nodes never pass a bad one on), and
        only then the SNEK decision and the route install."""
        body = self._checked_bootstrap(port, frame, now)
        if body is None:
            return
        next_port, watermark = self.snek(frame.destination_key, frame.watermark, bootstrap=True, now=now)
        old = self.routes.get(frame.destination_key)
        entry = self._install_route(port, next_port, frame.destination_key, body, now)
        onward_port: int | None = None
        if next_port is None or next_port == LOCAL_PORT:
            self.stats["bootstraps ended here"] += 1
            self._bootstrap_ended_here(port, entry, now)
        elif next_port == port:
            self.drops["bootstrap back to sender"] += 1
        elif watermark.worse_than(frame.watermark):
            self.drops["bootstrap watermark"] += 1
        else:
            onward = BootstrapFrame(
                frame.destination_key, watermark, frame.payload, frame.hop_limit, frame.extra
            )
            self.send(next_port, encode_frame(onward), now)
            onward_port = next_port
        if old is not None:
            self._route_replaced(old, onward_port, now)

    def _checked_bootstrap(self, port: int, frame: BootstrapFrame, now: float) -> BootstrapBody | None:
        """The bootstrap's body if it is for our root and newer than the route we
        have from its origin; raises :class:`SignatureError` if it is forged."""
        origin = frame.destination_key
        try:
            body = decode_bootstrap(frame.payload)
        except DecodeError:
            self.drops["bootstrap invalid"] += 1
            return None
        root = self.root()
        if (body.root_key, body.root_sequence) != root:
            self.drops["bootstrap for another root"] += 1
            return None
        existing = self.routes.get(origin)
        if existing is not None and existing.root == root and body.sequence <= existing.sequence:
            self.drops["bootstrap replayed"] += 1
            return None
        if self.config.verify_signatures:
            if not self._afford(port, "bootstrap", now):
                return None
            body.verify(origin)
        return body

    def _install_route(
        self, port: int, next_port: int | None, origin: PublicKey, body: BootstrapBody, now: float
    ) -> SnakeEntry:
        entry = SnakeEntry(origin, port, next_port, body.sequence, now, self.root())
        self.routes[origin] = entry
        self._changed()
        if origin < self.key:
            desc = self.descending
            if desc is None or not desc.valid(now) or desc.key == origin or desc.key < origin:
                if desc is not None and desc.key < origin and desc.valid(now):
                    self._descending_displaced(desc, now)
                self._set_descending(entry, now)
        return entry
