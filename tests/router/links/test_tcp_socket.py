"""The kernel's round-trip estimate for stream links."""

from __future__ import annotations

import socket

import pytest

from router.links.tcp_info import TCP_INFO, tcp_rtt_s


@pytest.mark.skipif(TCP_INFO is None, reason="TCP_INFO is Linux's")
def test_a_connected_tcp_socket_has_a_round_trip() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
        with client, accepted:
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
