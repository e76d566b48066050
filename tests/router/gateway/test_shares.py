"""Each node's share of the inbound gateway, on a fake clock."""

from __future__ import annotations

import pytest

from router.gateway import shares as shares_module
from router.gateway.shares import ShareLimits, Shares

A, B = b"a" * 32, b"b" * 32


def test_a_burst_then_the_steady_rate_then_retry_after() -> None:
    shares = Shares(ShareLimits(requests_per_second=2.0, request_burst=5.0))
    assert all(shares.admit_request(A, 0.0) is None for _ in range(5))
    assert shares.admit_request(A, 0.0) == 1  # one token comes back within a second
    assert shares.admit_request(B, 0.0) is None  # another node has its own bucket
    assert shares.admit_request(A, 0.5) is None
    assert shares.admit_request(A, 0.5) == 1
    slow = Shares(ShareLimits(requests_per_second=0.1, request_burst=1.0))
    assert slow.admit_request(A, 0.0) is None
    assert slow.admit_request(A, 0.0) == 10


def test_the_busiest_node_is_measured_in_one_and_ten_seconds() -> None:
    shares = Shares(ShareLimits())
    for i in range(30):
        shares.admit_request(A, i * 0.25)  # 4 a second for 7.5 s
    shares.admit_request(B, 0.0)
    assert shares.peak_1s == 4 and shares.peak_10s == 30
    for i in range(3):
        shares.admit_request(A, 20.0 + i * 0.001)
    assert shares.peak_1s == 4 and shares.peak_10s == 30  # peaks are kept


def test_one_node_cannot_take_every_stream() -> None:
    shares = Shares(ShareLimits(max_streams=5, max_streams_per_peer=3))
    assert [shares.open_stream(A, 0.0) for _ in range(4)] == [None, None, None, "one node's share of streams"]
    assert shares.open_stream(B, 0.0) is None and shares.open_stream(B, 0.0) is None
    assert shares.open_stream(B, 0.0) == "too many streams"
    shares.close_stream(A)
    assert shares.active == 4 and shares.streams_of(A) == 2
    assert shares.open_stream(B, 0.0) is None
    shares.close_stream(b"never seen" * 4)  # nothing to close: nothing changes
    assert shares.active == 5


def test_memory_is_bounded_and_open_streams_are_never_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shares_module, "MAX_TRACKED", 10)
    shares = Shares(ShareLimits(request_burst=1.0, requests_per_second=0.001))
    assert shares.open_stream(A, 0.0) is None
    assert shares.admit_request(A, 0.0) is None
    for i in range(100):
        shares.admit_request(i.to_bytes(32, "big"), 0.0)
    assert len(shares._peers) <= 10
    assert shares.streams_of(A) == 1
    assert shares.admit_request(A, 0.0) is not None  # its empty bucket was kept
