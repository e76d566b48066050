"""What stream links ask of the kernel's TCP sockets and learn from them."""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Iterator

import pytest

from router.links.tcp_socket import (
    NOTSENT_LOWAT_BYTES,
    SEND_BUFFER_CEILING_BYTES,
    TCP_INFO,
    TCP_NOTSENT_LOWAT,
    PathEstimate,
    kernel_queues,
    path_dead,
    path_estimate,
    retune_send_buffer,
    send_buffer_for,
    tcp_rtt_s,
    tune_peer_socket,
)


@contextlib.contextmanager
def connected_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """Both ends of a TCP connection on loopback: (the dialler's, the listener's)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
        with client, accepted:
            yield client, accepted


@pytest.mark.skipif(TCP_INFO is None, reason="TCP_INFO is Linux's")
def test_a_connected_tcp_socket_has_a_round_trip() -> None:
    with connected_pair() as (client, accepted):
        for _ in range(3):  # a few round trips for the kernel to measure
            client.sendall(b"x")
            accepted.recv(1)
            accepted.sendall(b"y")
            client.recv(1)
        rtt = tcp_rtt_s(client)
        assert rtt is not None and 0 < rtt < 1.0


def test_no_round_trip_where_there_is_none_to_know() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        assert tcp_rtt_s(udp) is None
    assert tcp_rtt_s(None) is None
    assert tcp_rtt_s(object()) is None


@pytest.mark.skipif(TCP_NOTSENT_LOWAT is None, reason="TCP_NOTSENT_LOWAT is Linux's")
def test_a_peer_socket_keeps_little_unsent_and_a_bounded_receive_buffer() -> None:
    with connected_pair() as (client, accepted):
        assert tune_peer_socket(client, 65536)
        assert TCP_NOTSENT_LOWAT is not None
        assert client.getsockopt(socket.IPPROTO_TCP, TCP_NOTSENT_LOWAT) == NOTSENT_LOWAT_BYTES
        # Linux doubles the value for its bookkeeping; autotuning would grow it to megabytes.
        assert client.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 2 * 65536
        before = accepted.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        assert tune_peer_socket(accepted, 0)  # 0: the receive side is the kernel's
        assert accepted.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == before
        # The kernel's queues as the operator's view reads them.
        client.sendall(b"x" * 1000)
        for _ in range(100):
            queues = kernel_queues(accepted)
            assert queues is not None
            if queues[0] == 1000:
                break
        assert kernel_queues(accepted) == (1000, 0)
        client.setblocking(False)
        # A full window: what the peer does not read stays unacknowledged with us.
        with contextlib.suppress(BlockingIOError):
            while True:
                client.send(b"y" * 65536)
        unread, unsent = kernel_queues(client) or (0, 0)
        assert unread == 0 and unsent > 0


@pytest.mark.parametrize(
    ("min_rtt_s", "rate", "expected"),
    [
        (30e-6, 100e6, 65536),  # loopback at 100 MB/s: 3 KB in flight, the floor
        (0.5e-3, 90e6, 65536),  # a busy receiver on loopback: 45 KB, still the floor
        (0.050, 10e6, 500_000),  # across a continent at 10 MB/s: what the path holds
        (0.200, 100e6, SEND_BUFFER_CEILING_BYTES),  # 20 MB wanted: the ceiling
        (0.050, 0.0, 65536),  # nothing measured yet
    ],
)
def test_the_send_buffer_follows_what_the_path_holds(min_rtt_s: float, rate: float, expected: int) -> None:
    assert send_buffer_for(PathEstimate(min_rtt_s, rate), 65536) == expected


def test_a_floor_above_the_ceiling_wins() -> None:
    floor = 2 * SEND_BUFFER_CEILING_BYTES
    assert send_buffer_for(PathEstimate(0.2, 100e6), floor) == floor


@pytest.mark.skipif(TCP_INFO is None, reason="TCP_INFO is Linux's")
def test_a_sending_socket_has_its_send_buffer_set_from_its_path() -> None:
    with connected_pair() as (client, accepted):
        assert tune_peer_socket(client, 0, 65536)
        # Linux doubles the value for its bookkeeping; autotuning would start at 16 KiB and grow.
        assert client.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == 2 * 65536
        for _ in range(20):  # some data acknowledged, for the kernel to measure the path
            client.sendall(b"x" * 10000)
            got = 0
            while got < 10000:
                got += len(accepted.recv(65536))
        path = path_estimate(client)
        assert path is not None and 0 < path.min_rtt_s < 1.0 and path.delivery_rate > 0
        size = retune_send_buffer(client, 100_000)
        assert size == send_buffer_for(path, 100_000) == 100_000  # loopback holds little: the floor
        assert client.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == 2 * 100_000


def test_tuning_and_queues_are_skipped_where_there_is_no_tcp_socket() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        assert not tune_peer_socket(udp, 65536)
        assert path_estimate(udp) is None
        assert retune_send_buffer(udp, 65536) is None
    assert not tune_peer_socket(None, 65536)
    assert path_estimate(None) is None
    assert retune_send_buffer(None, 65536) is None
    assert kernel_queues(None) is None
    closed = socket.socket()
    closed.close()
    assert kernel_queues(closed) is None


class Info:
    """A socket whose ``struct tcp_info`` says what the test puts in it."""

    def __init__(self, retransmits: int, unacked: int, last_ack_ms: int) -> None:
        self.fields = (retransmits, unacked, last_ack_ms)

    def getsockopt(self, level: int, option: int, size: int) -> bytes:
        retransmits, unacked, last_ack_ms = self.fields
        info = bytearray(size)
        info[2] = retransmits
        struct.pack_into("=I", info, 24, unacked)
        struct.pack_into("=I", info, 56, last_ack_ms)
        return bytes(info)


@pytest.mark.skipif(TCP_INFO is None, reason="TCP_INFO is Linux's")
@pytest.mark.parametrize(
    ("retransmits", "unacked", "last_ack_ms", "dead"),
    [
        (3, 4, 1500, True),  # in flight, three timeouts in a row, nothing back for 1.5 s
        (9, 1, 60_000, True),
        (2, 4, 1500, False),  # fewer timeouts: a loss or two on a live path
        (3, 4, 900, False),  # acknowledged lately
        (3, 0, 60_000, False),  # nothing in flight: a peer that stopped reading closes its window
        (0, 0, 0, False),
    ],
)
def test_a_path_is_dead_when_what_is_in_flight_goes_unanswered(
    retransmits: int, unacked: int, last_ack_ms: int, dead: bool
) -> None:
    assert path_dead(Info(retransmits, unacked, last_ack_ms)) is dead


@pytest.mark.skipif(TCP_INFO is None, reason="TCP_INFO is Linux's")
def test_a_live_path_and_a_peer_that_stops_reading_are_not_dead() -> None:
    with connected_pair() as (client, _):
        client.setblocking(False)
        sent = 0
        with contextlib.suppress(BlockingIOError):
            while sent < 64 * 1024 * 1024:  # until the peer's window and our buffer are full
                sent += client.send(b"x" * 65536)
        assert sent > 0 and not path_dead(client)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        assert not path_dead(udp)
    assert not path_dead(None)
