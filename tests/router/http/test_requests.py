"""The gateway's request reader: h11 parses, and every request keeps its exact bytes."""

from __future__ import annotations

import asyncio
from http import HTTPStatus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.http.requests import Request, RequestError, RequestReader

TRANSACTION = (
    b"PUT /_matrix/federation/v1/send/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b'Content-Length: 11\r\n\r\n{"pdus":[]}'
)
CHUNKED = (
    b"PUT /_matrix/federation/v1/send/2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b'5\r\n{"pdu\r\n6\r\ns":[]}\r\n0\r\n\r\n'
)
GET = b"GET /_matrix/federation/v1/version HTTP/1.1\r\nhost: x\r\n\r\n"


def reader_of(pieces: list[bytes], **limits: int) -> RequestReader:
    queue = list(pieces)

    async def read() -> bytes:
        return queue.pop(0) if queue else b""

    return RequestReader(
        read, max_head=limits.get("max_head", 16384), max_body=limits.get("max_body", 1 << 20)
    )


async def all_requests(reader: RequestReader) -> list[Request]:
    out = []
    while (request := await reader.next(5)) is not None:
        out.append(request)
        reader.respond(HTTPStatus.OK, b"{}")
    return out


def test_each_request_keeps_its_exact_bytes() -> None:
    requests = asyncio.run(all_requests(reader_of([TRANSACTION + CHUNKED + GET])))
    assert [r.raw for r in requests] == [TRANSACTION, CHUNKED, GET]
    assert [r.body for r in requests] == [b'{"pdus":[]}', b'{"pdus":[]}', b""]
    assert requests[1].header(b"transfer-encoding") == b"chunked"
    assert requests[2].method == b"GET" and requests[2].target == b"/_matrix/federation/v1/version"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=30))
def test_however_the_bytes_are_cut_the_requests_are_the_same(cuts: list[int]) -> None:
    stream = TRANSACTION + CHUNKED + GET
    pieces, at = [], 0
    for size in cuts:
        pieces.append(stream[at : at + size])
        at += size
    pieces.append(stream[at:])
    requests = asyncio.run(all_requests(reader_of([p for p in pieces if p])))
    assert [r.raw for r in requests] == [TRANSACTION, CHUNKED, GET]


@pytest.mark.parametrize(
    ("data", "status", "limits"),
    [
        (b"garbage\r\n\r\n", HTTPStatus.BAD_REQUEST, {}),
        (b"GET / HTTP/1.1\r\n\r\n", HTTPStatus.BAD_REQUEST, {}),  # no Host
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: x1\r\n\r\n", HTTPStatus.BAD_REQUEST, {}),
        (
            b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n",
            HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
            {"max_head": 1024},
        ),
        (TRANSACTION, HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"max_body": 5}),
        (CHUNKED, HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"max_body": 5}),
    ],
)
def test_what_is_not_taken_is_a_request_error_with_its_status(
    data: bytes, status: HTTPStatus, limits: dict[str, int]
) -> None:
    with pytest.raises(RequestError) as info:
        asyncio.run(all_requests(reader_of([data], **limits)))
    assert info.value.status == status


def test_a_client_that_closes_mid_request_is_an_error_and_one_that_closes_between_is_not() -> None:
    with pytest.raises(RequestError, match="closed connection without sending complete message body"):
        asyncio.run(all_requests(reader_of([TRANSACTION[:-3]])))
    assert asyncio.run(all_requests(reader_of([]))) == []


def test_head_leaves_what_follows_unread() -> None:
    async def run() -> tuple[bytes, bytes]:
        reader = reader_of([b"CONNECT abc:8448 HTTP/1.1\r\nHost: abc:8448\r\n\r\n\x16\x03\x01rest"])
        head = await reader.head(5)
        assert head is not None and head.method == b"CONNECT" and head.target == b"abc:8448"
        return reader.unread(), reader.read_so_far()

    unread, so_far = asyncio.run(run())
    assert unread == b"\x16\x03\x01rest"
    assert so_far.endswith(unread) and so_far.startswith(b"CONNECT ")
