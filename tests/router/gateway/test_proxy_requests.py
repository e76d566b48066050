"""The proxy's request parsers, from tables of bytes: SOCKS5 greetings and
requests, HTTP CONNECT and absolute-form requests; whole, cut at every byte
boundary, refused with the right answer, and fuzzed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from http import HTTPStatus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.gateway.errors import GatewayError
from router.gateway.proxy_requests import (
    MAX_REQUEST_HEAD,
    HttpConnect,
    HttpForward,
    HttpRequest,
    HttpRequestError,
    Message,
    ProxyRequestError,
    SocksAddressType,
    SocksAuthMethod,
    SocksCommand,
    SocksGreeting,
    SocksGreetingError,
    SocksReply,
    SocksRequest,
    SocksRequestError,
    parse_http_request,
    parse_socks_greeting,
    parse_socks_request,
    socks_method_selection,
    socks_reply,
)
from router.matrix.names import server_name

Parse = Callable[[bytes, bool], Message | None]

NAME = server_name(bytes(range(32)))
"""A server name that stands for a node key: 52 base32 characters."""


def feed(parse: Parse, chunks: Sequence[bytes]) -> list[Message | None]:
    """What ``parse`` makes of the bytes so far, after each chunk arrives."""
    data = b""
    results = []
    for chunk in chunks:
        data += chunk
        results.append(parse(data, False))
    return results


def assert_whole_and_cut(parse: Parse, data: bytes, expected: Message) -> None:
    """``data`` is ``expected`` whole, byte by byte, and in two parts cut anywhere;
    before its last byte it is only a start."""
    assert parse(b"", False) is None
    assert parse(data, False) == expected
    assert feed(parse, [data[i : i + 1] for i in range(len(data))]) == [None] * (len(data) - 1) + [expected]
    for cut in range(1, len(data)):
        assert feed(parse, [data[:cut], data[cut:]]) == [None, expected], cut


# ---------------------------------------------------------------- SOCKS5 greetings

VALID_GREETINGS = [
    # version 5 | 1 method | no authentication
    pytest.param(b"\x05\x01\x00", SocksGreeting(b"\x00", 3), id="no-authentication"),
    # version 5 | 2 methods | username/password, no authentication
    pytest.param(b"\x05\x02\x02\x00", SocksGreeting(b"\x02\x00", 4), id="two-methods"),
    # version 5 | 3 methods | no authentication, GSSAPI, username/password
    pytest.param(b"\x05\x03\x00\x01\x02", SocksGreeting(b"\x00\x01\x02", 5), id="three-methods"),
    # version 5 | 255 methods, no authentication last
    pytest.param(
        b"\x05\xff" + bytes(range(1, 255)) + b"\x00",
        SocksGreeting(bytes(range(1, 255)) + b"\x00", 257),
        id="255-methods",
    ),
]


@pytest.mark.parametrize(("data", "expected"), VALID_GREETINGS)
def test_valid_greetings_whole_and_cut_at_every_byte(data: bytes, expected: SocksGreeting) -> None:
    assert_whole_and_cut(parse_socks_greeting, data, expected)
    assert expected.method is SocksAuthMethod.NO_AUTHENTICATION


def test_a_greeting_leaves_the_request_behind_it() -> None:
    greeting = parse_socks_greeting(b"\x05\x01\x00" + b"\x05\x01\x00\x03", False)
    assert greeting == SocksGreeting(b"\x00", 3)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x05\x01\x02", id="username-password-only"),
        pytest.param(b"\x05\x02\x01\x02", id="gssapi-and-username-password"),
        pytest.param(b"\x05\x00", id="no-methods-at-all"),
    ],
)
def test_a_greeting_without_no_authentication_gets_no_acceptable_method(data: bytes) -> None:
    greeting = parse_socks_greeting(data, False)
    assert greeting is not None and greeting.size == len(data)
    assert greeting.method is SocksAuthMethod.NO_ACCEPTABLE_METHODS


@pytest.mark.parametrize(
    ("data", "ended", "reason"),
    [
        pytest.param(b"\x04\x01\x00", False, "version 4", id="socks4"),
        pytest.param(b"\x00", False, "version 0", id="version-0"),
        pytest.param(b"G", False, "version 71", id="http"),
        pytest.param(b"", True, "closed", id="nothing"),
        pytest.param(b"\x05", True, "closed", id="no-count"),
        pytest.param(b"\x05\x02\x00", True, "closed", id="one-method-of-two"),
    ],
)
def test_invalid_greetings_are_refused(data: bytes, ended: bool, reason: str) -> None:
    with pytest.raises(SocksGreetingError, match=reason):
        parse_socks_greeting(data, ended)


# ---------------------------------------------------------------- SOCKS5 requests


def request(
    kind: int, address: bytes, port: bytes = b"\x20\xf0", *, version: int = 5, command: int = 1
) -> bytes:
    """version | command | reserved | address type | address | port (8432 unless given)."""
    return bytes([version, command, 0, kind]) + address + port


def named(name: bytes) -> bytes:
    """A domain-name address: its length, then the name."""
    return bytes([len(name)]) + name


VALID_REQUESTS = [
    pytest.param(
        # version 5 | CONNECT | reserved | IPv4 | 127.0.0.1 | port 8448
        b"\x05\x01\x00\x01\x7f\x00\x00\x01\x21\x00",
        SocksRequest(SocksCommand.CONNECT, SocksAddressType.IPV4, "127.0.0.1", 8448, 10),
        id="ipv4",
    ),
    pytest.param(
        # version 5 | CONNECT | reserved | name | length 11 | "example.org" | port 443
        b"\x05\x01\x00\x03\x0bexample.org\x01\xbb",
        SocksRequest(SocksCommand.CONNECT, SocksAddressType.DOMAIN_NAME, "example.org", 443, 18),
        id="domain",
    ),
    pytest.param(
        request(SocksAddressType.DOMAIN_NAME, named(NAME.encode()), b"\x21\x00"),
        SocksRequest(SocksCommand.CONNECT, SocksAddressType.DOMAIN_NAME, NAME, 8448, 4 + 1 + 52 + 2),
        id="key-name",
    ),
    pytest.param(
        request(SocksAddressType.DOMAIN_NAME, named(b"a" * 253), b"\xff\xff"),
        SocksRequest(SocksCommand.CONNECT, SocksAddressType.DOMAIN_NAME, "a" * 253, 65535, 4 + 1 + 253 + 2),
        id="longest-domain",
    ),
    pytest.param(
        # version 5 | CONNECT | reserved | IPv6 | ::1 | port 0
        b"\x05\x01\x00\x04" + bytes(15) + b"\x01\x00\x00",
        SocksRequest(SocksCommand.CONNECT, SocksAddressType.IPV6, "::1", 0, 22),
        id="ipv6",
    ),
    pytest.param(
        request(SocksAddressType.IPV6, bytes.fromhex("20010db8000000000000000000000001")),
        SocksRequest(SocksCommand.CONNECT, SocksAddressType.IPV6, "2001:db8::1", 8432, 22),
        id="ipv6-documentation",
    ),
    pytest.param(
        # A reserved byte other than zero is let through, as it always was.
        b"\x05\x01\x7f\x01\x0a\x00\x00\x02\x00\x50",
        SocksRequest(SocksCommand.CONNECT, SocksAddressType.IPV4, "10.0.0.2", 80, 10),
        id="reserved-not-zero",
    ),
]


@pytest.mark.parametrize(("data", "expected"), VALID_REQUESTS)
def test_valid_requests_whole_and_cut_at_every_byte(data: bytes, expected: SocksRequest) -> None:
    assert_whole_and_cut(parse_socks_request, data, expected)


@pytest.mark.parametrize(("data", "expected"), VALID_REQUESTS)
def test_bytes_after_a_request_are_left_for_the_tunnel(data: bytes, expected: SocksRequest) -> None:
    client_hello = b"\x16\x03\x01\x02\x00"
    parsed = parse_socks_request(data + client_hello, False)
    assert parsed == expected
    assert (data + client_hello)[parsed.size :] == client_hello


INVALID_REQUESTS = [
    pytest.param(
        request(1, bytes(4), version=4), SocksReply.COMMAND_NOT_SUPPORTED, "version 4", id="version-4"
    ),
    pytest.param(
        request(1, bytes(4), version=0), SocksReply.COMMAND_NOT_SUPPORTED, "version 0", id="version-0"
    ),
    pytest.param(request(1, bytes(4), command=2), SocksReply.COMMAND_NOT_SUPPORTED, "command 2", id="bind"),
    pytest.param(request(1, bytes(4), command=3), SocksReply.COMMAND_NOT_SUPPORTED, "command 3", id="udp"),
    pytest.param(
        request(1, bytes(4), command=0), SocksReply.COMMAND_NOT_SUPPORTED, "command 0", id="command-0"
    ),
    pytest.param(request(0x02, bytes(4)), SocksReply.ADDRESS_TYPE_NOT_SUPPORTED, "type 2", id="type-2"),
    pytest.param(request(0x00, b""), SocksReply.ADDRESS_TYPE_NOT_SUPPORTED, "type 0", id="type-0"),
    pytest.param(request(0xFF, b""), SocksReply.ADDRESS_TYPE_NOT_SUPPORTED, "type 255", id="type-255"),
    # The address type is judged before the version and the command.
    pytest.param(
        request(0x05, b"", version=4, command=2),
        SocksReply.ADDRESS_TYPE_NOT_SUPPORTED,
        "type 5",
        id="all-bad",
    ),
    pytest.param(request(3, named(b"")), SocksReply.NOT_ALLOWED, "0 octets", id="empty-domain"),
    pytest.param(request(3, named(b"a" * 254)), SocksReply.NOT_ALLOWED, "254 octets", id="domain-254"),
    pytest.param(request(3, named(b"a" * 255)), SocksReply.NOT_ALLOWED, "255 octets", id="domain-255"),
    pytest.param(request(3, named("é.org".encode())), SocksReply.NOT_ALLOWED, "not ASCII", id="not-ascii"),
    pytest.param(request(3, named(b"\xff" * 52)), SocksReply.NOT_ALLOWED, "not ASCII", id="not-utf8"),
]


@pytest.mark.parametrize(("data", "reply", "reason"), INVALID_REQUESTS)
def test_invalid_requests_are_answered_with_their_reply_code(
    data: bytes, reply: SocksReply, reason: str
) -> None:
    with pytest.raises(SocksRequestError, match=reason) as caught:
        parse_socks_request(data, False)
    assert caught.value.reply is reply


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x05\x01\x00\x09", id="address-type"),
        pytest.param(b"\x04\x01\x00\x01", id="version"),
        pytest.param(b"\x05\x02\x00\x03", id="command"),
        pytest.param(b"\x05\x01\x00\x03\xfe", id="domain-length"),
    ],
)
def test_a_bad_request_is_refused_before_the_rest_of_it_arrives(data: bytes) -> None:
    with pytest.raises(SocksRequestError):
        parse_socks_request(data, False)


@pytest.mark.parametrize(("data", "expected"), VALID_REQUESTS)
def test_a_request_cut_short_by_the_client_is_a_general_failure(data: bytes, expected: SocksRequest) -> None:
    for cut in range(len(data)):
        with pytest.raises(SocksRequestError, match="closed in the middle") as caught:
            parse_socks_request(data[:cut], True)
        assert caught.value.reply is SocksReply.GENERAL_FAILURE
    assert parse_socks_request(data, True) == expected


def test_socks_answers_byte_for_byte() -> None:
    assert socks_method_selection(SocksAuthMethod.NO_AUTHENTICATION) == b"\x05\x00"
    assert socks_method_selection(SocksAuthMethod.NO_ACCEPTABLE_METHODS) == b"\x05\xff"
    # version 5 | code | reserved | IPv4 | 0.0.0.0 | port 0
    assert socks_reply(SocksReply.SUCCEEDED) == b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    assert socks_reply(SocksReply.NOT_ALLOWED) == b"\x05\x02\x00\x01\x00\x00\x00\x00\x00\x00"


# ---------------------------------------------------------------- HTTP


def connect(target: bytes, headers: bytes = b"Host: x\r\n", version: bytes = b"1.1") -> bytes:
    return b"CONNECT " + target + b" HTTP/" + version + b"\r\n" + headers + b"\r\n"


def padded(size: int) -> bytes:
    """A CONNECT head of exactly ``size`` bytes, padded with one long header."""
    head = connect(b"n:8448", b"Host: n\r\nX-Pad: \r\n")
    return connect(b"n:8448", b"Host: n\r\nX-Pad: " + b"a" * (size - len(head)) + b"\r\n")


PROXY_REQUEST = (
    b"GET http://" + NAME.encode() + b"/_matrix/key/v2/server HTTP/1.1\r\n"
    b"Host: " + NAME.encode() + b"\r\n"
    b"Proxy-Authorization: Basic eDp5\r\n"
    b"User-Agent: Synapse\r\n"
    b"Connection: keep-alive\r\n"
    b"Keep-Alive: timeout=5\r\n"
    b"Proxy-Connection: keep-alive\r\n"
    b"\r\n"
)
FORWARDED = (
    b"GET /_matrix/key/v2/server HTTP/1.1\r\n"
    b"Host: " + NAME.encode() + b"\r\n"
    b"User-Agent: Synapse\r\n"
    b"Connection: close\r\n"
    b"\r\n"
)

VALID_HTTP = [
    pytest.param(
        connect(NAME.encode() + b":8448", b"Host: " + NAME.encode() + b":8448\r\n"),
        HttpConnect(NAME, 8448, 8 + 52 + 5 + 11 + 6 + 52 + 7 + 2),
        id="connect-as-synapse-sends-it",
    ),
    pytest.param(connect(b"n:443", b"", b"1.0"), HttpConnect("n", 443, 26), id="http-1.0-without-host"),
    pytest.param(connect(b"[::1]:443"), HttpConnect("[::1]", 443, 39), id="ipv6-literal"),
    pytest.param(connect(b"a:b:8448"), HttpConnect("a:b", 8448, 38), id="last-colon-splits"),
    pytest.param(connect(b"n:0"), HttpConnect("n", 0, 33), id="port-0"),
    pytest.param(connect(b"n:65535"), HttpConnect("n", 65535, 37), id="port-65535"),
    pytest.param(connect(b"n:00443"), HttpConnect("n", 443, 37), id="leading-zeros"),
    pytest.param(padded(MAX_REQUEST_HEAD), HttpConnect("n", 8448, MAX_REQUEST_HEAD), id="largest-head"),
    pytest.param(PROXY_REQUEST, HttpForward(NAME, 80, len(PROXY_REQUEST), FORWARDED), id="absolute-form"),
    pytest.param(
        b"GET http://n HTTP/1.1\r\nHost: n\r\n\r\n",
        HttpForward("n", 80, 34, b"GET / HTTP/1.1\r\nHost: n\r\nConnection: close\r\n\r\n"),
        id="absolute-no-path",
    ),
    pytest.param(
        b"PUT http://n:8008/a?b=c HTTP/1.0\r\nContent-Length: 2\r\n\r\n",
        HttpForward("n", 8008, 55, b"PUT /a?b=c HTTP/1.0\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"),
        id="absolute-with-port",
    ),
    pytest.param(
        b"GET http://n:/ HTTP/1.1\r\nHost: n\r\n\r\n",
        HttpForward("n", 80, 36, b"GET / HTTP/1.1\r\nHost: n\r\nConnection: close\r\n\r\n"),
        id="absolute-empty-port",
    ),
]


@pytest.mark.parametrize(("data", "expected"), VALID_HTTP)
def test_valid_http_requests_whole(data: bytes, expected: HttpRequest) -> None:
    assert expected.size == len(data)
    assert parse_http_request(data, False) == expected
    assert parse_http_request(data, True) == expected


@pytest.mark.parametrize(("data", "expected"), VALID_HTTP[:3] + VALID_HTTP[-4:])
def test_valid_http_requests_cut_at_every_byte(data: bytes, expected: HttpRequest) -> None:
    assert_whole_and_cut(parse_http_request, data, expected)


def test_bytes_after_a_head_are_left_for_the_tunnel_or_the_body() -> None:
    client_hello = b"\x16\x03\x01\x02\x00\x01"
    data = connect(b"n:8448") + client_hello
    parsed = parse_http_request(data, False)
    assert parsed == HttpConnect("n", 8448, len(data) - len(client_hello))
    data = b"POST http://n/send HTTP/1.1\r\nHost: n\r\nContent-Length: 4\r\n\r\nbody"
    parsed = parse_http_request(data, False)
    assert isinstance(parsed, HttpForward) and data[parsed.size :] == b"body"


INVALID_HTTP = [
    *(
        pytest.param(
            connect(b"n:" + port), HTTPStatus.BAD_REQUEST, "CONNECT needs host:port", id=f"port-{name}"
        )
        for name, port in [
            ("empty", b""),
            ("word", b"https"),
            ("65536", b"65536"),
            ("99999", b"99999"),
            ("negative", b"-1"),
            ("plus", b"+443"),
            ("exponent", b"1e3"),
            ("six-digits", b"008448"),
            ("thousands-of-digits", b"1" * 5000),
        ]
    ),
    pytest.param(connect(b"n"), HTTPStatus.BAD_REQUEST, "CONNECT needs host:port", id="no-port"),
    pytest.param(connect(b":8448"), HTTPStatus.BAD_REQUEST, "CONNECT needs host:port", id="no-host"),
    pytest.param(connect(b"[::1]"), HTTPStatus.BAD_REQUEST, "CONNECT needs host:port", id="ipv6-no-port"),
    pytest.param(connect(b"n:8448", b""), HTTPStatus.BAD_REQUEST, "Host", id="no-host-header"),
    pytest.param(
        connect(b"n:8448", b"Host x\r\n"), HTTPStatus.BAD_REQUEST, "not an HTTP/1.1", id="bad-header"
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: n\r\n\r\n",
        HTTPStatus.BAD_REQUEST,
        "only CONNECT and absolute",
        id="origin-form",
    ),
    pytest.param(
        b"GET https://n/ HTTP/1.1\r\nHost: n\r\n\r\n", HTTPStatus.BAD_REQUEST, "only CONNECT", id="https-url"
    ),
    pytest.param(
        b"GET http:///p HTTP/1.1\r\nHost: n\r\n\r\n", HTTPStatus.BAD_REQUEST, "no host", id="url-no-host"
    ),
    pytest.param(
        b"GET http://n:x/ HTTP/1.1\r\nHost: n\r\n\r\n", HTTPStatus.BAD_REQUEST, "port", id="url-bad-port"
    ),
    pytest.param(
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", HTTPStatus.BAD_REQUEST, "only CONNECT", id="http2-preface"
    ),
    # h11 refuses a first line that cannot be a request line at once.
    pytest.param(b"\x16\x03\x01\x02\x00", HTTPStatus.BAD_REQUEST, "not an HTTP/1.1", id="tls-record"),
    pytest.param(b" GET", HTTPStatus.BAD_REQUEST, "not an HTTP/1.1", id="leading-space"),
    pytest.param(
        padded(MAX_REQUEST_HEAD + 1),
        HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
        "over 16384",
        id="head-too-large",
    ),
    pytest.param(
        b"GET http://n/" + b"a" * MAX_REQUEST_HEAD,
        HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
        "over 16384",
        id="endless-request-line",
    ),
]


@pytest.mark.parametrize(("data", "status", "reason"), INVALID_HTTP)
def test_invalid_http_requests_are_answered_with_their_status(
    data: bytes, status: HTTPStatus, reason: str
) -> None:
    with pytest.raises(HttpRequestError, match=reason) as caught:
        parse_http_request(data, False)
    assert caught.value.status is status


def test_the_head_limit_holds_however_the_bytes_arrive() -> None:
    largest, too_large = padded(MAX_REQUEST_HEAD), padded(MAX_REQUEST_HEAD + 1)
    assert parse_http_request(too_large[:MAX_REQUEST_HEAD], False) is None
    for data in (too_large, too_large[: MAX_REQUEST_HEAD + 1], too_large + b"more"):
        with pytest.raises(HttpRequestError) as caught:
            parse_http_request(data, False)
        assert caught.value.status is HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
    assert parse_http_request(largest + b"\x16" * MAX_REQUEST_HEAD, False) == HttpConnect(
        "n", 8448, len(largest)
    )


@pytest.mark.parametrize("data", [b"", b"C", connect(b"n:8448")[:-1], PROXY_REQUEST[:-2]])
def test_a_head_cut_short_by_the_client_is_a_bad_request(data: bytes) -> None:
    assert parse_http_request(data, False) is None
    with pytest.raises(HttpRequestError) as caught:
        parse_http_request(data, True)
    assert caught.value.status is HTTPStatus.BAD_REQUEST


# ---------------------------------------------------------------- fuzz

PARSERS = [
    pytest.param(parse_socks_greeting, SocksGreetingError, id="greeting"),
    pytest.param(parse_socks_request, SocksRequestError, id="request"),
    pytest.param(parse_http_request, HttpRequestError, id="http"),
]
VALID = [p.values[0] for p in VALID_GREETINGS + VALID_REQUESTS + VALID_HTTP if isinstance(p.values[0], bytes)]
HTTP_PIECES = [
    b"CONNECT",
    b"GET",
    b" ",
    b":",
    b"\r\n",
    b"Host: ",
    b"http://",
    b" HTTP/1.1",
    b"8448",
    b"[",
    b"]",
]


def check(parse: Parse, error: type[ProxyRequestError], data: bytes, ended: bool) -> None:
    """``parse`` makes of ``data`` a message, nothing yet, or its own error; a
    message is found again in its own bytes, and nothing yet is an error at the end."""
    try:
        message = parse(data, ended)
    except error:
        return
    if message is None:
        assert not ended
        with pytest.raises(error):
            parse(data, True)
        return
    assert 0 < message.size <= len(data)
    assert parse(data[: message.size], ended) == message
    assert all(parse(data[:cut], False) is None for cut in range(message.size))


@pytest.mark.parametrize(("parse", "error"), PARSERS)
@given(data=st.binary(max_size=600), ended=st.booleans())
def test_arbitrary_bytes(parse: Parse, error: type[ProxyRequestError], data: bytes, ended: bool) -> None:
    check(parse, error, data, ended)


@pytest.mark.parametrize(("parse", "error"), PARSERS)
@given(
    prefix=st.sampled_from(
        [b"\x05\x01\x00", b"\x05\x01\x00\x03", b"\x05\x01\x00\x04", b"CONNECT ", b"GET http://"]
    ),
    data=st.binary(max_size=300),
    ended=st.booleans(),
)
def test_arbitrary_bytes_behind_a_valid_start(
    parse: Parse, error: type[ProxyRequestError], prefix: bytes, data: bytes, ended: bool
) -> None:
    check(parse, error, prefix + data, ended)


@given(
    pieces=st.lists(st.sampled_from(HTTP_PIECES) | st.binary(max_size=8), max_size=30), ended=st.booleans()
)
def test_http_made_of_http_pieces(pieces: list[bytes], ended: bool) -> None:
    check(parse_http_request, HttpRequestError, b"".join(pieces), ended)


@pytest.mark.parametrize(("parse", "error"), PARSERS)
@given(data=st.data())
def test_valid_messages_with_one_byte_changed(
    parse: Parse, error: type[ProxyRequestError], data: st.DataObject
) -> None:
    sample = bytearray(data.draw(st.sampled_from(VALID)))
    sample[data.draw(st.integers(0, len(sample) - 1))] = data.draw(st.integers(0, 255))
    check(parse, error, bytes(sample[: data.draw(st.integers(0, len(sample)))]), data.draw(st.booleans()))


def test_the_errors_are_the_gateways() -> None:
    for error in (SocksGreetingError, SocksRequestError, HttpRequestError):
        assert issubclass(error, ProxyRequestError) and issubclass(error, GatewayError)
