"""The sessions endpoint, sans-I/O, on a fake clock and a perfect in-memory network."""

from __future__ import annotations

import os
from typing import Any

import pytest
from aioquic.quic.packet import QuicErrorCode
from aioquic.tls import AlertDescription
from hypothesis import given, settings
from hypothesis import strategies as st

from router.quic import aioquic_hooks
from router.quic.aioquic_connection import peer_certificate_key
from router.sessions.codes import CloseCode, StreamResetCode, TlsAlert
from router.sessions.connection import (
    IDLE_TIMEOUT_S,
    MAX_DATAGRAM_BYTES,
    OVERLAY_DATAGRAM_BYTES,
    STREAM_WINDOW,
)
from router.sessions.endpoint import NO_ANSWER_TO_PROBE, PROBE_TIMEOUT_S, RESET_BY_PEER, Endpoint
from router.sessions.events import (
    SessionAlive,
    SessionDown,
    SessionSetAside,
    SessionUp,
    StreamAborted,
    StreamData,
)
from router.sessions.session import Limits, SessionState
from tests.router.sessions.pair import Net


def received(net: Net, n: int, stream_id: int | None = None) -> bytes:
    return b"".join(
        e.data
        for e in net.events[n]
        if isinstance(e, StreamData) and (stream_id is None or e.stream_id == stream_id)
    )


def test_session_comes_up_with_both_keys_proved() -> None:
    net = Net(2)
    session = net.endpoints[0].connect(net.key(1), "matrix", net.now)
    net.run(0.2)
    assert [type(e) for e in net.events[0]] == [SessionUp]
    assert [type(e) for e in net.events[1]] == [SessionUp]
    inbound = net.events[1][0]
    assert isinstance(inbound, SessionUp)
    # Each side learned the other's key from its certificate, which TLS proved.
    assert peer_certificate_key(session.connection) == net.key(1)
    assert inbound.session.key == net.key(0)
    assert peer_certificate_key(inbound.session.connection) == net.key(0)
    assert inbound.session.alpn == "matrix"
    assert net.endpoints[1].find(net.key(0), "matrix") is inbound.session


def test_stream_carries_bytes_both_ways_in_order() -> None:
    net = Net(2)
    a, b = net.endpoints
    session = a.connect(net.key(1), "matrix", net.now)
    net.run(0.2)
    request = os.urandom(300_000)
    stream = a.open_stream(session, net.now)
    a.send(session, stream, request, end=True)
    net.run(1.0)
    assert received(net, 1) == request
    inbound = next(e for e in net.events[1] if isinstance(e, SessionUp)).session
    ends = [e for e in net.events[1] if isinstance(e, StreamData) and e.end]
    assert len(ends) == 1 and ends[0].stream_id == stream
    b.consumed(inbound, stream, len(request))
    b.send(inbound, stream, b"answer", end=True)
    net.run(0.5)
    assert received(net, 0, stream) == b"answer"


def test_reused_session_for_the_same_key_and_protocol() -> None:
    net = Net(2)
    first = net.endpoints[0].connect(net.key(1), "matrix", net.now)
    assert net.endpoints[0].connect(net.key(1), "matrix", net.now) is first
    net.run(0.2)
    assert net.endpoints[0].connect(net.key(1), "matrix", net.now) is first


def test_forged_destination_certificate_is_refused() -> None:
    """Node 2 receives what is sent to node 1 and answers as node 1 with its own
    certificate: node 0 refuses the session."""
    net = Net(3)
    net.redirect[net.key(1)] = net.key(2)
    net.spoof[2] = net.key(1)
    session = net.endpoints[0].connect(net.key(1), "matrix", net.now)
    net.run(1.0)
    assert not any(isinstance(e, SessionUp) for e in net.events[0])
    down = [e for e in net.events[0] if isinstance(e, SessionDown)]
    assert len(down) == 1 and "does not name the key" in down[0].reason
    assert session.state is SessionState.FAILED
    assert net.endpoints[0].drops["certificate names another key"] == 1


def test_dialler_whose_certificate_is_not_its_source_key_is_refused() -> None:
    """Node 0 dials node 1 claiming to be node 2: node 1 refuses the session."""
    net = Net(3)
    net.spoof[0] = net.key(2)
    net.redirect[net.key(2)] = net.key(0)
    net.endpoints[0].connect(net.key(1), "matrix", net.now)
    net.run(1.0)
    assert not any(isinstance(e, SessionUp) for e in net.events[1])
    assert net.endpoints[1].drops["certificate names another key"] == 1
    assert not net.endpoints[1].sessions or all(s.is_closed for s in net.endpoints[1].sessions)


def test_unreachable_key_fails_within_the_connect_timeout() -> None:
    net = Net(2, limits=Limits(connect_timeout_s=3.0))
    net.offline.add(net.key(1))
    started = net.now
    session = net.endpoints[0].connect(net.key(1), "matrix", net.now)
    net.run(5.0)
    down = [e for e in net.events[0] if isinstance(e, SessionDown)]
    assert len(down) == 1 and "unreachable" in down[0].reason
    assert session.state is SessionState.FAILED
    assert net.endpoints[0].find(net.key(1), "matrix") is None
    # It gave up at the deadline, not before.
    assert session.connect_deadline == started + 3.0


def test_protocol_the_other_side_does_not_speak_fails() -> None:
    net = Net(2)
    net.endpoints[0].alpns.append("other")
    session = net.endpoints[0].connect(net.key(1), "other", net.now)
    net.run(1.0)
    assert session.state is SessionState.FAILED
    assert not any(isinstance(e, SessionUp) for e in net.events[1])


def test_idle_session_closes_and_open_stream_keeps_it_alive() -> None:
    net = Net(2)
    a = net.endpoints[0]
    idle = a.connect(net.key(1), "matrix", net.now)
    net.run(0.2)
    busy_net = Net(2)
    busy = busy_net.endpoints[0].connect(busy_net.key(1), "matrix", busy_net.now)
    busy_net.run(0.2)
    busy_net.endpoints[0].open_stream(busy, busy_net.now)
    busy_net.endpoints[0].send(busy, 0, b"x")
    net.run(IDLE_TIMEOUT_S + 5)
    busy_net.run(IDLE_TIMEOUT_S * 4)
    assert idle.state is SessionState.CLOSED and idle not in a.sessions
    assert busy.state is SessionState.ESTABLISHED


def test_reader_that_stops_reading_bounds_what_waits() -> None:
    net = Net(2)
    a = net.endpoints[0]
    session = a.connect(net.key(1), "matrix", net.now)
    net.run(0.2)
    stream = a.open_stream(session, net.now)
    a.send(session, stream, os.urandom(8 * STREAM_WINDOW))
    net.run(3.0)
    waiting = len(received(net, 1))
    assert STREAM_WINDOW // 2 <= waiting <= STREAM_WINDOW
    inbound = next(e for e in net.events[1] if isinstance(e, SessionUp)).session
    net.endpoints[1].consumed(inbound, stream, waiting)
    net.run(3.0)
    assert waiting < len(received(net, 1)) <= waiting + STREAM_WINDOW


def test_peer_reset_is_reported() -> None:
    net = Net(2)
    a, b = net.endpoints
    session = a.connect(net.key(1), "matrix", net.now)
    net.run(0.2)
    stream = a.open_stream(session, net.now)
    a.send(session, stream, b"hello")
    net.run(0.2)
    inbound = next(e for e in net.events[1] if isinstance(e, SessionUp)).session
    b.abort_stream(inbound, stream, 7)
    net.run(0.2)
    aborted = [e for e in net.events[0] if isinstance(e, StreamAborted)]
    assert [(e.stream_id, e.error_code) for e in aborted] == [(stream, 7)]


def test_handshakes_per_key_are_limited() -> None:
    net = Net(2, limits=Limits(max_handshaking_per_key=2))
    # Three independent dialling endpoints with the same key would be a replay;
    # here one endpoint's three distinct protocols each start a handshake.
    a = net.endpoints[0]
    a.alpns.extend(["p1", "p2"])
    net.endpoints[1].alpns.extend(["p1", "p2"])
    for alpn in ("matrix", "p1", "p2"):
        a.connect(net.key(1), alpn, net.now)
    for destination, payload in a.datagrams_to_send(net.now):
        net.by_key[destination].datagram_received(net.key(0), payload, net.now)
    assert len(net.endpoints[1].sessions) == 2
    assert net.endpoints[1].drops["too many handshakes from one key"] == 1


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=1400))
def test_garbage_datagrams_are_counted_drops(data: bytes) -> None:
    net = Net(1)
    endpoint = net.endpoints[0]
    source = os.urandom(32)
    endpoint.datagram_received(source, data, net.now)
    sent = endpoint.datagrams_to_send(net.now)
    assert sum(endpoint.drops.values()) + len(endpoint.sessions) == 1
    if not endpoint.sessions:
        # At most a stateless reset, to the sender, smaller than what it sent.
        assert len(sent) <= 1 and all(key == source and len(reset) < len(data) for key, reset in sent)


def test_close_and_reset_codes_have_their_values_on_the_wire() -> None:
    """A TLS alert travels as QUIC's CRYPTO_ERROR range plus the alert (RFC 9001,
    section 4.8); the values are checked against aioquic's own tables too."""
    assert int(TlsAlert.BAD_CERTIFICATE) == int(AlertDescription.bad_certificate) == 42
    assert int(TlsAlert.NO_APPLICATION_PROTOCOL) == int(AlertDescription.no_application_protocol) == 120
    assert int(CloseCode.NO_ERROR) == int(QuicErrorCode.NO_ERROR) == 0
    assert int(CloseCode.BAD_CERTIFICATE) == QuicErrorCode.CRYPTO_ERROR + 42 == 0x12A
    assert int(CloseCode.NO_APPLICATION_PROTOCOL) == QuicErrorCode.CRYPTO_ERROR + 120 == 0x178
    assert [int(code) for code in StreamResetCode] == [0x0, 0x10]


def restart(net: Net, n: int, *, resets: bool = True) -> None:
    """Node ``n`` restarts with the same key and forgets its sessions.  With
    ``resets`` off it answers stale packets as a node without this project's
    derived reset tokens would: not at all."""
    fresh = Endpoint(net.ids[n], net.endpoints[n].alpns)
    if not resets:
        fresh._reset_secret = os.urandom(32)  # its tokens match none it gave before
    net.endpoints[n] = fresh
    net.by_key[net.key(n)] = fresh


def test_a_node_that_restarted_resets_the_sessions_of_its_last_run() -> None:
    net = Net(2)
    a = net.endpoints[0]
    session = a.connect(net.key(1), "matrix", net.now)
    net.run(0.2)
    assert session.state is SessionState.ESTABLISHED
    restart(net, 1)
    net.run(2.0)
    assert a.needs_probe(session, net.now)  # quiet for longer than PROBE_IDLE_S
    a.probe(session, net.now)
    net.run(0.05)  # one round trip: the probe out, the stateless reset back
    assert session.is_closed and session.close_reason == RESET_BY_PEER
    assert net.endpoints[1].drops["for no known session (answered with a stateless reset)"] >= 1
    assert a.find(net.key(1), "matrix") is None
    # A fresh session comes up at once.
    fresh = a.connect(net.key(1), "matrix", net.now)
    net.run(0.2)
    assert fresh is not session and fresh.state is SessionState.ESTABLISHED


def test_a_probe_without_an_answer_closes_the_session() -> None:
    net = Net(2)
    a = net.endpoints[0]
    session = a.connect(net.key(1), "matrix", net.now)
    net.run(0.2)
    restart(net, 1, resets=False)
    net.run(2.0)
    a.probe(session, net.now)
    net.run(PROBE_TIMEOUT_S / 2)
    assert session.state is SessionState.PROBING
    net.run(PROBE_TIMEOUT_S)
    assert session.is_closed and session.close_reason == NO_ANSWER_TO_PROBE
    assert a.counters["sessions closed: no answer to a probe"] == 1


def test_a_probe_is_answered_only_by_the_acknowledgement_of_its_ping() -> None:
    """A datagram that reaches the session but does not decrypt (garbage under
    its connection ID, or a packet of another run's connection) is no answer."""
    net = Net(2)
    a = net.endpoints[0]
    session = a.connect(net.key(1), "matrix", net.now)
    net.run(0.2)
    restart(net, 1, resets=False)
    net.run(2.0)
    heard = session.last_heard_at
    a.probe(session, net.now)
    for _ in range(3):
        stray = bytes([0x41]) + session.connection.host_cid + os.urandom(60)
        a.datagram_received(net.key(1), stray, net.now)
        net.run(PROBE_TIMEOUT_S / 4)
    assert session.last_heard_at == heard  # nothing that decrypted
    net.run(PROBE_TIMEOUT_S)
    assert session.state is SessionState.CLOSED and session.close_reason == NO_ANSWER_TO_PROBE
    assert not any(isinstance(e, SessionAlive) and e.session is session for e in net.events[0])


def test_a_live_session_answers_its_probe_and_stays() -> None:
    net = Net(2)
    a = net.endpoints[0]
    session = a.connect(net.key(1), "matrix", net.now)
    net.run(2.0)
    assert a.needs_probe(session, net.now)
    a.probe(session, net.now)
    net.run(0.05)
    assert session.state is SessionState.ESTABLISHED
    assert any(isinstance(e, SessionAlive) and e.session is session for e in net.events[0])
    assert not a.needs_probe(session, net.now)  # just heard from
    net.run(PROBE_TIMEOUT_S * 2)
    assert session.state is SessionState.ESTABLISHED


def test_a_new_session_from_a_key_has_the_older_ones_probed() -> None:
    net = Net(2)
    b = net.endpoints[1]
    net.endpoints[0].connect(net.key(1), "matrix", net.now)
    net.run(2.0)
    old = b.find(net.key(0), "matrix")
    assert old is not None
    restart(net, 0)  # node 0 restarts and dials again
    net.endpoints[0].connect(net.key(1), "matrix", net.now)
    net.run(0.2)
    new = b.find(net.key(0), "matrix")
    assert new is not None and new is not old and new.state is SessionState.ESTABLISHED
    assert old.state is SessionState.PROBING  # b probed its quiet session with the old node 0
    # The old session was one node 0 dialled: QUIC gives a client's first
    # connection ID no reset token, so the new node 0 cannot reset it; the
    # probe's deadline ends it.
    net.run(PROBE_TIMEOUT_S + 0.1)
    assert old.is_closed and old.close_reason == NO_ANSWER_TO_PROBE
    assert new.state is SessionState.ESTABLISHED


def test_stateless_resets_are_smaller_than_what_caused_them_and_budgeted() -> None:
    net = Net(1)
    endpoint = net.endpoints[0]
    short_header = bytes([0x40]) + os.urandom(8) + os.urandom(60)  # a 1-RTT packet for no session
    for _ in range(100):
        endpoint.datagram_received(net.key(0)[:31] + b"\x01", short_header, net.now)
    sent = endpoint.datagrams_to_send(net.now)
    assert 0 < len(sent) <= 20  # STATELESS_RESETS_PER_S, at once
    assert all(len(reset) < len(short_header) and reset[0] & 0xC0 == 0x40 for _, reset in sent)
    assert endpoint.drops["for no known session (stateless reset budget spent)"] == 100 - len(sent)
    tiny = bytes([0x40]) + os.urandom(8) + os.urandom(5)
    endpoint.datagram_received(os.urandom(32), tiny, net.now)
    assert endpoint.datagrams_to_send(net.now) == []  # too small to answer with anything smaller


def test_a_session_with_streams_open_that_misses_a_probe_is_set_aside_not_closed() -> None:
    net = Net(2)
    a = net.endpoints[0]
    session = a.connect(net.key(1), "matrix", net.now)
    net.run(0.2)
    stream = a.open_stream(session, net.now)
    net.offline.add(net.key(1))  # a stall: nothing gets through for a while
    net.run(2.0)
    a.probe(session, net.now)
    net.run(PROBE_TIMEOUT_S + 0.1)
    assert session.state is SessionState.SET_ASIDE and stream in session.streams
    assert a.counters["sessions set aside: no answer to a probe"] == 1
    assert a.find(net.key(1), "matrix") is None  # new streams go on a fresh session
    assert any(isinstance(e, SessionSetAside) and e.session is session for e in net.events[0])
    net.offline.clear()
    fresh = a.connect(net.key(1), "matrix", net.now)
    net.run(0.2)
    assert fresh is not session and fresh.state is SessionState.ESTABLISHED
    assert session.state is SessionState.SET_ASIDE


def sizes_sent(net: Net) -> list[int]:
    """From now on, record the size of every datagram the endpoints send."""
    sizes: list[int] = []
    for endpoint in net.endpoints:
        send = endpoint.datagrams_to_send

        def recorded(now: float, send: Any = send) -> list[tuple[bytes, bytes]]:
            out: list[tuple[bytes, bytes]] = send(now)
            sizes.extend(len(payload) for _, payload in out)
            return out

        endpoint.datagrams_to_send = recorded  # type: ignore[method-assign]
    return sizes


def test_sessions_between_pinewood_nodes_send_overlay_sized_datagrams_once_up() -> None:
    """The handshake keeps to 1200-byte datagrams; after it, a side that set no
    limit (aioquic sets none: 65527 bytes) is sent datagrams of up to
    OVERLAY_DATAGRAM_BYTES, which the overlay carries as one frame each."""
    net = Net(2)
    a, b = net.endpoints
    sizes = sizes_sent(net)
    session = a.connect(net.key(1), "matrix", net.now)
    net.run(0.2)
    assert sizes and max(sizes) <= MAX_DATAGRAM_BYTES
    assert a.counters["sessions sending overlay-sized datagrams"] == 1
    assert b.counters["sessions sending overlay-sized datagrams"] == 1
    sizes.clear()
    request = os.urandom(300_000)
    stream = a.open_stream(session, net.now)
    a.send(session, stream, request, end=True)
    net.run(1.0)
    assert received(net, 1) == request
    assert MAX_DATAGRAM_BYTES < max(sizes) <= OVERLAY_DATAGRAM_BYTES


def test_a_side_that_takes_only_small_datagrams_is_sent_small_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """quic-go (the reference's sessions) says it takes 1452 bytes: such a side
    keeps getting datagrams of MAX_DATAGRAM_BYTES."""
    real = aioquic_hooks.pull_quic_transport_parameters

    def as_quic_go(buf: Any) -> Any:
        params = real(buf)
        params.max_udp_payload_size = 1452
        return params

    monkeypatch.setattr(aioquic_hooks, "pull_quic_transport_parameters", as_quic_go)
    net = Net(2)
    a, b = net.endpoints
    sizes = sizes_sent(net)
    session = a.connect(net.key(1), "matrix", net.now)
    net.run(0.2)
    request = os.urandom(300_000)
    stream = a.open_stream(session, net.now)
    a.send(session, stream, request, end=True)
    net.run(1.0)
    assert received(net, 1) == request
    assert max(sizes) <= MAX_DATAGRAM_BYTES
    assert a.counters["sessions sending overlay-sized datagrams"] == 0
    assert b.counters["sessions sending overlay-sized datagrams"] == 0


def test_an_answer_to_a_path_challenge_is_not_overlay_sized() -> None:
    """aioquic pads the datagram that answers a PATH_CHALLENGE to its full size;
    a session that sends overlay-sized datagrams answers in 1200 bytes, so a
    40-byte challenge draws no 16 KiB back."""
    net = Net(2)
    a, _ = net.endpoints
    session = a.connect(net.key(1), "matrix", net.now)
    net.run(0.2)
    stream = a.open_stream(session, net.now)
    a.send(session, stream, os.urandom(100_000), end=True)
    net.run(0.5)  # the datagrams are overlay-sized by now
    assert session.connection._max_datagram_size == OVERLAY_DATAGRAM_BYTES
    session.connection._network_paths[0].remote_challenges.append(os.urandom(8))
    out = session.connection.datagrams_to_send(net.now)
    assert out and max(len(data) for data, _ in out) <= MAX_DATAGRAM_BYTES
    assert not session.connection._network_paths[0].remote_challenges  # answered
    assert session.connection._max_datagram_size == OVERLAY_DATAGRAM_BYTES
