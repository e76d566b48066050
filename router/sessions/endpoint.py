"""The sessions endpoint, sans-I/O: QUIC connections fed with overlay datagrams.

Every overlay traffic payload that is not the router's own (pings) is one QUIC
datagram, addressed by the public key of the node that sent it, as in the
reference's sessions layer.  The endpoint finds the connection a datagram
belongs to by (source key, destination connection ID), accepts new connections
from Initial packets, checks that every session's certificate names the key it
is addressed by, and reports what happened as events
(:mod:`router.sessions.events`).  It takes ``now`` and returns what to send;
the asyncio runtime (:mod:`router.sessions.runtime`) moves the bytes and arms
the timer.

Nothing that arrives is trusted: a datagram that parses as no QUIC packet, for
no known connection, or past the limits on sessions is dropped and counted.

A session is not trusted to be alive just because it is open: the other node
may have restarted and forgotten it.  Three things find a dead one:

* a session quiet for a quarter of a second or more (or four round trips) is
  probed (a PING) before a new stream goes on it, and closed (set aside, if it
  has streams open) if no answer comes within the probe timeout;
* the stateless reset tokens a node gives out are derived from a secret of its
  own key, so after a restart it answers a packet for a session it no longer
  has with a stateless reset (RFC 9000, section 10.3), which closes the
  session on the other side at once (for sessions it accepted: QUIC gives the
  first connection ID of the side that dials no token, and the other side
  keeps sending to it);
* a new session from a key makes the older ones with that key be probed.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
from collections import Counter

from router.quic.aioquic_connection import (
    MIN_STATELESS_RESET_BYTES,
    AdjustedConnection,
    ConnectionIdIssued,
    ConnectionIdRetired,
    ConnectionTerminated,
    HandshakeCompleted,
    PingAcknowledged,
    QuicConfiguration,
    QuicPacketType,
    StreamDataReceived,
    StreamReset,
    check_aioquic,
    is_stateless_reset,
    live_stream_ids,
    packet_received_at,
    peer_certificate_key,
    read_header,
    smoothed_rtt_s,
    stateless_reset_token,
    stream_buffered_bytes,
)
from router.routing.budget import TokenBucket
from router.sessions.codes import UNREACHABLE, CloseCode, StreamResetCode
from router.sessions.connection import OVERLAY_DATAGRAM_BYTES, configuration
from router.sessions.events import (
    SessionAlive,
    SessionDown,
    SessionEvent,
    SessionSetAside,
    SessionUp,
    StreamAborted,
    StreamData,
)
from router.sessions.session import Limits, Session, SessionState
from router.wire.keys import Identity

CONNECTION_ID_BYTES = 8  # aioquic's host connection IDs
KEEPALIVE_S = 5.0
"""While a session has open streams, it is pinged this often so it never idles out."""
PROBE_IDLE_S = 0.25
"""A session not heard from for this long (or four round trips, if longer) is
probed before a new stream goes on it: one round trip more for the first
request after a quiet spell, against a request lost to a peer that restarted."""
PROBE_TIMEOUT_S = 1.0
"""A probed session that does not answer within this (or four round trips, if
longer) is closed: the other node restarted or went away."""
NO_ANSWER_TO_PROBE = "no answer to a liveness probe (the node restarted or went away)"
RESET_BY_PEER = "reset by the other node (it restarted and no longer has the session)"
STATELESS_RESET_BYTES = 40
"""The size of the stateless resets sent (smaller if the packet that caused one was)."""
STATELESS_RESETS_PER_S = 20.0
"""How many stateless resets a node sends a second, at most, to all keys together."""


class Endpoint:
    """All sessions of one node."""

    def __init__(self, identity: Identity, alpns: list[str], limits: Limits | None = None) -> None:
        check_aioquic()
        self.identity = identity
        self.alpns = list(alpns)
        self.limits = limits or Limits()
        self._server_config = configuration(identity, self.alpns, client=False)
        self._client_configs: dict[str, QuicConfiguration] = {}
        self._by_cid: dict[tuple[bytes, bytes], Session] = {}
        self._by_peer: dict[tuple[bytes, str], Session] = {}
        self._by_key: dict[bytes, set[Session]] = {}
        self.sessions: set[Session] = set()
        self._events: list[SessionEvent] = []
        self._dirty: set[Session] = set()
        self.drops: Counter[str] = Counter()
        self.counters: Counter[str] = Counter()
        self._reset_secret = hashlib.sha256(b"pinewood stateless reset\x00" + identity.seed).digest()
        self._reset_budget: TokenBucket | None = None
        self._resets: list[tuple[bytes, bytes]] = []
        self._probe_pings = 0  # the PING ids of probes (keepalives use 0)

    # ------------------------------------------------------------ queries

    def find(self, key: bytes, alpn: str) -> Session | None:
        """The live session with ``key`` for ``alpn``: connecting, established or being probed."""
        session = self._by_peer.get((key, alpn))
        return session if session is not None and session.is_live else None

    def events(self) -> list[SessionEvent]:
        events, self._events = self._events, []
        return events

    # ------------------------------------------------------------ inputs

    def connect(self, key: bytes, alpn: str, now: float) -> Session:
        """Start a session to ``key`` for ``alpn`` (reusing a live one)."""
        existing = self.find(key, alpn)
        if existing is not None:
            return existing
        if key == self.identity.public_key:
            raise ValueError("a node cannot open a session to itself")
        if alpn not in self.alpns:
            raise ValueError(f"protocol {alpn!r} is not one this endpoint speaks")
        config = self._client_configs.get(alpn)
        if config is None:
            config = configuration(self.identity, [alpn], client=True)
            config.server_name = key.hex()
            self._client_configs[alpn] = config
        connection = AdjustedConnection(configuration=config, reset_secret=self._secret_for(key))
        session = Session(
            key, alpn, True, connection, now, now + self.limits.connect_timeout_s, last_heard_at=now
        )
        self._add(session)
        connection.connect(session.address, now)
        self._dirty.add(session)
        return session

    def datagram_received(self, source: bytes, data: bytes, now: float) -> None:
        try:
            header = read_header(data, CONNECTION_ID_BYTES)
        except ValueError:
            self.drops["not a QUIC packet"] += 1
            return
        session = self._by_cid.get((source, header.destination_cid))
        if session is None:
            if header.packet_type == QuicPacketType.ONE_RTT:
                # A stateless reset's connection ID is random: it is known by its tail.
                for candidate in self._by_key.get(source, ()):
                    if is_stateless_reset(candidate.connection, data):
                        self._reset_by_peer(candidate)
                        return
                self._answer_with_reset(source, header.destination_cid, len(data), now)
                return
            if header.packet_type != QuicPacketType.INITIAL or len(data) < 1200:
                self.drops["for no known session"] += 1
                return
            if header.version not in self._server_config.supported_versions:
                self.drops["unsupported QUIC version"] += 1
                return
            session = self._accept(source, header.destination_cid, now)
            if session is None:
                return
        elif is_stateless_reset(session.connection, data):
            self._reset_by_peer(session)
            return
        session.bytes_received += len(data)
        session.connection.receive_datagram(data, session.address, now)
        if packet_received_at(session.connection) == now:
            session.last_heard_at = now  # only a packet that decrypted is a sign of life
        self._dirty.add(session)
        self._process(session, now)

    def _secret_for(self, key: bytes) -> bytes:
        """The secret the reset tokens of our sessions with ``key`` are derived
        from: a token learnt from one peer says nothing of the tokens of another."""
        return hmac.new(self._reset_secret, key, hashlib.sha256).digest()

    def _reset_by_peer(self, session: Session) -> None:
        """The other node sent a stateless reset: the session is gone there."""
        self.counters["sessions reset by the other node"] += 1
        self._closed(session, RESET_BY_PEER)
        self._remove(session)

    def _answer_with_reset(self, source: bytes, cid: bytes, size: int, now: float) -> None:
        """A short-header packet for no session we have: perhaps one of our last
        run's.  Answer with a stateless reset (smaller than the packet, so two
        nodes cannot keep one another resetting), within a budget."""
        if size <= MIN_STATELESS_RESET_BYTES:
            self.drops["for no known session"] += 1
            return
        if self._reset_budget is None:
            self._reset_budget = TokenBucket(STATELESS_RESETS_PER_S, STATELESS_RESETS_PER_S, now)
        if not self._reset_budget.take(now):
            self.drops["for no known session (stateless reset budget spent)"] += 1
            return
        length = min(size - 1, STATELESS_RESET_BYTES)
        token = stateless_reset_token(self._secret_for(source), cid)
        first = 0x40 | (os.urandom(1)[0] & 0x3F)  # a short header's form, the rest unpredictable
        self._resets.append((source, bytes([first]) + os.urandom(length - 1 - len(token)) + token))
        self.drops["for no known session (answered with a stateless reset)"] += 1

    def _accept(self, source: bytes, original_cid: bytes, now: float) -> Session | None:
        if len(self.sessions) >= self.limits.max_sessions:
            self.drops["session limit reached"] += 1
            return None
        handshaking = sum(1 for s in self.sessions if s.key == source and not s.was_established)
        if handshaking >= self.limits.max_handshaking_per_key:
            self.drops["too many handshakes from one key"] += 1
            return None
        connection = AdjustedConnection(
            configuration=self._server_config,
            original_destination_connection_id=original_cid,
            reset_secret=self._secret_for(source),
        )
        session = Session(
            source, "", False, connection, now, now + self.limits.connect_timeout_s, last_heard_at=now
        )
        self._add(session)
        self._register(session, original_cid)
        return session

    def needs_probe(self, session: Session, now: float) -> bool:
        """Whether ``session`` has been quiet long enough that it should answer a
        probe before it is trusted with a new stream."""
        if session.state is not SessionState.ESTABLISHED:
            return False
        return now - session.last_heard_at > max(PROBE_IDLE_S, 4 * (session.rtt_s or 0.0))

    def probe(self, session: Session, now: float) -> None:
        """Ask the other side for an answer (a PING of the probe's own): :class:`SessionAlive`
        when that PING is acknowledged, or the session closes at the deadline.  Only an
        established session is probed: one being probed already, or not up, is left as it is."""
        if session.state is not SessionState.ESTABLISHED:
            return
        session.move_to(SessionState.PROBING)
        self._probe_pings += 1
        session.probe_ping = self._probe_pings
        session.connection.send_ping(session.probe_ping)
        session.probe_deadline = now + max(PROBE_TIMEOUT_S, 4 * (session.rtt_s or 0.0))
        self.counters["sessions probed"] += 1
        self._dirty.add(session)

    def send(self, session: Session, stream_id: int, data: bytes, end: bool = False) -> bool:
        """Queue ``data`` on the stream; False if the stream can no longer send
        (its session closed, or the other side stopped it or it was finished)."""
        if session.is_closed:
            return False
        try:
            session.connection.send_stream_data(stream_id, data, end_stream=end)
        except (ValueError, RuntimeError):  # aioquic: reset, finished or unknown
            self.drops["writes on a stream that can no longer send"] += 1
            return False
        self._dirty.add(session)
        return True

    def unsent(self, session: Session, stream_id: int) -> int:
        """Bytes written to the stream that QUIC still holds (unsent or unacknowledged)."""
        return stream_buffered_bytes(session.connection, stream_id)

    def open_stream(self, session: Session, now: float) -> int:
        """A new bidirectional stream on an established session."""
        stream_id = session.connection.get_next_available_stream_id()
        session.connection.send_stream_data(stream_id, b"")
        session.streams.add(stream_id)
        self._keepalive(session, now)
        return stream_id

    def consumed(self, session: Session, stream_id: int, count: int) -> None:
        session.connection.stream_consumed(stream_id, count)
        self._dirty.add(session)

    def abort_stream(
        self, session: Session, stream_id: int, error_code: int = StreamResetCode.ABORTED
    ) -> None:
        """Reset our sending side and ask the peer to stop sending; forget the stream."""
        if not session.is_closed and stream_id in session.streams:
            connection = session.connection
            # Either side may already have finished, which aioquic reports as ValueError.
            with contextlib.suppress(ValueError):
                connection.reset_stream(stream_id, error_code)
            with contextlib.suppress(ValueError):
                connection.stop_stream(stream_id, error_code)
            self._dirty.add(session)
        self.stream_done(session, stream_id)

    def stream_done(self, session: Session, stream_id: int) -> None:
        session.streams.discard(stream_id)
        session.connection.stream_forget(stream_id)
        session.done_streams.add(stream_id)
        if len(session.done_streams) > 256:
            # Once aioquic has discarded a stream, nothing more arrives for it.
            live = live_stream_ids(session.connection)
            session.done_streams = {s for s in session.done_streams if s in live}
        if not session.streams:
            session.next_ping_at = float("inf")

    def close(self, session: Session, reason: str, now: float, error: CloseCode = CloseCode.NO_ERROR) -> None:
        if session.is_closed:
            return
        session.connection.close(error_code=error, reason_phrase=reason[:100])
        self._closed(session, reason)
        self._dirty.add(session)

    def close_all(self, now: float) -> None:
        for session in list(self.sessions):
            self.close(session, "node stopping", now)

    # ------------------------------------------------------------ outputs and time

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, bytes]]:
        """(destination key, payload) for every datagram the sessions want sent."""
        out, self._resets = self._resets, []
        dirty, self._dirty = self._dirty, set()
        for session in dirty:
            if session not in self.sessions:
                continue
            for data, _ in session.connection.datagrams_to_send(now):
                session.bytes_sent += len(data)
                out.append((session.key, data))
            self._process(session, now)
        return out

    def next_deadline(self) -> float:
        deadline = float("inf")
        for session in self.sessions:
            timer = session.connection.get_timer()
            if timer is not None and timer < deadline:
                deadline = timer
            if session.state is SessionState.CONNECTING:
                deadline = min(deadline, session.connect_deadline)
            deadline = min(deadline, session.next_ping_at, session.probe_deadline)
        return deadline

    def handle_timer(self, now: float) -> None:
        for session in list(self.sessions):
            if session.state is SessionState.CONNECTING and now >= session.connect_deadline:
                self.close(session, UNREACHABLE, now)
            if session.state is SessionState.PROBING and now >= session.probe_deadline:
                self._probe_unanswered(session, now)
            timer = session.connection.get_timer()
            if timer is not None and now >= timer:
                session.connection.handle_timer(now)
                self._dirty.add(session)
            if session.is_up and now >= session.next_ping_at:
                session.connection.send_ping(0)
                session.next_ping_at = now + KEEPALIVE_S
                self._dirty.add(session)
            self._process(session, now)

    # ------------------------------------------------------------ internals

    def _add(self, session: Session) -> None:
        self.sessions.add(session)
        self._by_key.setdefault(session.key, set()).add(session)
        if session.outbound:
            self._by_peer[(session.key, session.alpn)] = session
        self._register(session, session.connection.host_cid)

    def _register(self, session: Session, cid: bytes) -> None:
        session.cids.add(cid)
        self._by_cid[(session.key, cid)] = session

    def _remove(self, session: Session) -> None:
        self.sessions.discard(session)
        same_key = self._by_key.get(session.key)
        if same_key is not None:
            same_key.discard(session)
            if not same_key:
                del self._by_key[session.key]
        self._dirty.discard(session)
        for cid in session.cids:
            if self._by_cid.get((session.key, cid)) is session:
                del self._by_cid[(session.key, cid)]
        if self._by_peer.get((session.key, session.alpn)) is session:
            del self._by_peer[(session.key, session.alpn)]

    def _closed(self, session: Session, reason: str) -> None:
        if not session.is_closed:
            session.move_to(SessionState.CLOSED if session.was_established else SessionState.FAILED)
            session.close_reason = reason
            session.next_ping_at = float("inf")
            session.probe_deadline = float("inf")
            self._events.append(SessionDown(session, reason))

    def _probe_unanswered(self, session: Session, now: float) -> None:
        """A probe went unanswered: new streams go on a fresh session.  An idle
        session is closed; one with streams open is only set aside (it may just
        be stalled), and goes when its streams end or QUIC's idle timeout does."""
        session.probe_deadline = float("inf")
        if not session.streams:
            self.counters["sessions closed: no answer to a probe"] += 1
            self.close(session, NO_ANSWER_TO_PROBE, now)
            return
        self.counters["sessions set aside: no answer to a probe"] += 1
        session.move_to(SessionState.SET_ASIDE)
        if self._by_peer.get((session.key, session.alpn)) is session:
            del self._by_peer[(session.key, session.alpn)]
        self._events.append(SessionSetAside(session))

    def _keepalive(self, session: Session, now: float) -> None:
        """Ping ``KEEPALIVE_S`` from now, unless a ping is already due sooner."""
        session.next_ping_at = min(session.next_ping_at, now + KEEPALIVE_S)

    def _process(self, session: Session, now: float) -> None:
        connection = session.connection
        while (event := connection.next_event()) is not None:
            if isinstance(event, StreamDataReceived):
                if session.is_closed:
                    continue
                if event.stream_id not in session.streams:
                    # A new stream only if the peer opened it, bidirectional, and
                    # not one already finished here (late data for it is not).
                    # Streams may start out of order: data for stream 8 can
                    # arrive before any for stream 4.
                    peer_opened = bool(event.stream_id & 1) == session.outbound
                    if (
                        not peer_opened
                        or event.stream_id & 2
                        or event.stream_id in session.done_streams
                        or not session.is_up
                    ):
                        continue
                    session.streams.add(event.stream_id)
                    self._keepalive(session, now)
                self._events.append(StreamData(session, event.stream_id, event.data, event.end_stream))
            elif isinstance(event, StreamReset):
                # (A STOP_SENDING alone ends only our half: aioquic resets it, and
                # the next write finds it so; the other half can still be read.)
                if event.stream_id in session.streams:
                    self._events.append(StreamAborted(session, event.stream_id, event.error_code))
            elif isinstance(event, ConnectionIdIssued):
                self._register(session, event.connection_id)
            elif isinstance(event, ConnectionIdRetired):
                session.cids.discard(event.connection_id)
                self._by_cid.pop((session.key, event.connection_id), None)
            elif isinstance(event, HandshakeCompleted):
                self._handshake_done(session, event.alpn_protocol, now)
            elif isinstance(event, PingAcknowledged):
                # The probe is answered when its own PING is acknowledged: not by
                # any datagram (one of another run's connection would do), nor by
                # a late packet sent before the probe.
                if session.state is SessionState.PROBING and event.uid == session.probe_ping:
                    session.move_to(SessionState.ESTABLISHED)
                    session.probe_deadline = float("inf")
                    self._events.append(SessionAlive(session))
            elif isinstance(event, ConnectionTerminated):
                self._closed(session, event.reason_phrase or f"closed by the peer ({event.error_code})")
                self._remove(session)
                return
        rtt = smoothed_rtt_s(connection)
        if rtt is not None:
            session.rtt_s = rtt

    def _handshake_done(self, session: Session, alpn: str | None, now: float) -> None:
        proved = peer_certificate_key(session.connection)
        if proved != session.key:
            self.drops["certificate names another key"] += 1
            self.close(
                session,
                "the other side's certificate does not name the key addressed",
                now,
                CloseCode.BAD_CERTIFICATE,
            )
            return
        if alpn is None or alpn not in self.alpns or (session.outbound and alpn != session.alpn):
            self.close(
                session, f"no common application protocol ({alpn})", now, CloseCode.NO_APPLICATION_PROTOCOL
            )
            return
        if not session.outbound:
            session.alpn = alpn
            # Newest wins for future streams; an older session keeps its streams.
            self._by_peer[(session.key, alpn)] = session
        session.move_to(SessionState.ESTABLISHED)
        if session.connection.enlarge_datagrams(OVERLAY_DATAGRAM_BYTES):
            self.counters["sessions sending overlay-sized datagrams"] += 1
        self._events.append(SessionUp(session))
        # A new session from a key often means the node restarted: the older
        # ones with it may be dead.  Those that have gone quiet must answer.
        for other in self.sessions:
            if other is not session and other.key == session.key and self.needs_probe(other, now):
                self.probe(other, now)
