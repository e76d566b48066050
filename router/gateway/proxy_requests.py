"""What a homeserver asks of the outbound proxy, parsed without I/O.

Each ``parse_*`` function takes every byte the client has sent so far and
returns None while those bytes are only the start of a message, the message
once it is whole, or raises a :class:`ProxyRequestError` that carries what the
client is answered.  ``ended`` says the client has finished sending: an
incomplete message is then refused as well.  A message records its ``size``;
the bytes after it (a TLS ClientHello sent early, say) belong to the tunnel.

No message the proxy takes is longer than :data:`MAX_REQUEST_HEAD`, and more
bytes than that without a whole message are refused, so a caller that reads at
most ``n`` bytes between calls never holds more than that bound plus ``n``.

SOCKS5 (RFC 1928) comes as two messages, the greeting and the request, with the
proxy's choice of authentication method sent between them.  An HTTP request
head is parsed by h11.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import IntEnum
from http import HTTPStatus
from typing import Protocol

import h11

from router.gateway.errors import GatewayError

MAX_REQUEST_HEAD = 16 * 1024
"""The largest request head taken, in bytes (HTTP; SOCKS5 messages are far shorter)."""
SOCKS_VERSION = 5  # RFC 1928
MAX_DOMAIN_NAME_OCTETS = 253
"""The longest name a SOCKS5 request may give: RFC 1035 (section 2.3.4) allows
255 octets on the wire, which is 253 characters written out."""
SOCKS_PORT_OCTETS = 2
MAX_PORT = 65535
HTTP_DEFAULT_PORT = 80
CONNECT_ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"
"""The answer to a CONNECT request once the tunnel is open."""


class SocksAuthMethod(IntEnum):
    """SOCKS5 authentication methods (RFC 1928, section 3)."""

    NO_AUTHENTICATION = 0x00
    NO_ACCEPTABLE_METHODS = 0xFF


class SocksCommand(IntEnum):
    """SOCKS5 request commands (RFC 1928, section 4); only CONNECT is served."""

    CONNECT = 0x01
    BIND = 0x02
    UDP_ASSOCIATE = 0x03


class SocksAddressType(IntEnum):
    """How a SOCKS5 request or reply gives an address (RFC 1928, section 5)."""

    IPV4 = 0x01
    DOMAIN_NAME = 0x03
    IPV6 = 0x04


class SocksReply(IntEnum):
    """SOCKS5 reply codes (RFC 1928, section 6), those the proxy sends."""

    SUCCEEDED = 0x00
    GENERAL_FAILURE = 0x01
    """The node could not carry the request (HTTP's 502), or the request was cut short."""
    NOT_ALLOWED = 0x02
    """Connection not allowed by ruleset: the name stands for no node key."""
    HOST_UNREACHABLE = 0x04
    """No session with the node in time (HTTP's 504)."""
    CONNECTION_REFUSED = 0x05
    """The node is busy (HTTP's 503)."""
    COMMAND_NOT_SUPPORTED = 0x07
    ADDRESS_TYPE_NOT_SUPPORTED = 0x08


IP_ADDRESS_OCTETS = {SocksAddressType.IPV4: 4, SocksAddressType.IPV6: 16}


def socks_method_selection(method: SocksAuthMethod) -> bytes:
    """The answer to a SOCKS5 greeting: the method the proxy chose."""
    return bytes([SOCKS_VERSION, method])


def socks_reply(code: SocksReply) -> bytes:
    """A SOCKS5 reply: version, code, a reserved byte, and 0.0.0.0:0 as the bound address."""
    return bytes([SOCKS_VERSION, code, 0, SocksAddressType.IPV4]) + bytes(6)


# ---------------------------------------------------------------- errors


class ProxyRequestError(GatewayError):
    """What the client sent is not a request the proxy takes; the subclass carries the answer."""


class SocksGreetingError(ProxyRequestError):
    """Not a SOCKS5 greeting, or cut short; answered with
    :attr:`SocksAuthMethod.NO_ACCEPTABLE_METHODS`."""


class SocksRequestError(ProxyRequestError):
    """A SOCKS5 request the proxy refuses; ``reply`` is the code it is answered with."""

    def __init__(self, reply: SocksReply, message: str) -> None:
        super().__init__(message)
        self.reply = reply


class HttpRequestError(ProxyRequestError):
    """An HTTP request the proxy refuses; ``status`` is the status it is answered with."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------- messages


class Message(Protocol):
    """A whole message: it took the first ``size`` bytes given to its parser."""

    @property
    def size(self) -> int: ...


@dataclass(frozen=True, slots=True)
class SocksGreeting:
    methods: bytes
    """The authentication methods the client offers, as it listed them."""
    size: int

    @property
    def method(self) -> SocksAuthMethod:
        """The method the proxy chooses: no authentication (it listens on
        loopback only), or none at all if the client does not offer that."""
        if SocksAuthMethod.NO_AUTHENTICATION in self.methods:
            return SocksAuthMethod.NO_AUTHENTICATION
        return SocksAuthMethod.NO_ACCEPTABLE_METHODS


@dataclass(frozen=True, slots=True)
class SocksRequest:
    command: SocksCommand
    address_type: SocksAddressType
    host: str
    """A name as sent, or an IP address written out."""
    port: int
    size: int


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A request the HTTP proxy takes: one of the two forms below."""

    host: str
    port: int
    size: int


@dataclass(frozen=True, slots=True)
class HttpConnect(HttpRequest):
    """``CONNECT host:port``: a tunnel."""


@dataclass(frozen=True, slots=True)
class HttpForward(HttpRequest):
    """A request in absolute form (``GET http://host/path``), forwarded as one request."""

    head: bytes
    """The head to send on: in origin form, without the proxy's own headers, with
    ``Connection: close``."""


# ---------------------------------------------------------------- SOCKS5


def parse_socks_greeting(data: bytes, ended: bool = False) -> SocksGreeting | None:
    """The greeting: version 5, then the count and list of the methods offered."""
    if data and data[0] != SOCKS_VERSION:
        raise SocksGreetingError(f"not a SOCKS5 greeting (version {data[0]})")
    if len(data) >= 2 and len(data) >= (size := 2 + data[1]):
        return SocksGreeting(bytes(data[2:size]), size)
    if ended:
        raise SocksGreetingError("the client closed in the middle of its SOCKS5 greeting")
    return None


def parse_socks_request(data: bytes, ended: bool = False) -> SocksRequest | None:
    """The request: version, command, a reserved byte, the address and the port."""
    request = _socks_request(data) if len(data) >= 4 else None
    if request is None and ended:
        raise SocksRequestError(
            SocksReply.GENERAL_FAILURE, "the client closed in the middle of its SOCKS5 request"
        )
    return request


def _socks_request(data: bytes) -> SocksRequest | None:
    # The address type is judged before the version and the command, so a
    # request wrong in several ways gets the address-type reply.
    version, command, _reserved, kind = data[:4]
    try:
        address_type = SocksAddressType(kind)
    except ValueError:
        raise SocksRequestError(
            SocksReply.ADDRESS_TYPE_NOT_SUPPORTED, f"SOCKS5 address type {kind} is not one of RFC 1928's"
        ) from None
    if version != SOCKS_VERSION:
        raise SocksRequestError(SocksReply.COMMAND_NOT_SUPPORTED, f"not a SOCKS5 request (version {version})")
    if command != SocksCommand.CONNECT:
        raise SocksRequestError(
            SocksReply.COMMAND_NOT_SUPPORTED, f"SOCKS5 command {command} is not served, only CONNECT"
        )
    if address_type is SocksAddressType.DOMAIN_NAME:
        if len(data) < 5:
            return None
        start, length = 5, data[4]
        if not 0 < length <= MAX_DOMAIN_NAME_OCTETS:
            raise SocksRequestError(SocksReply.NOT_ALLOWED, f"a name of {length} octets is not a server name")
    else:
        start, length = 4, IP_ADDRESS_OCTETS[address_type]
    end = start + length
    size = end + SOCKS_PORT_OCTETS
    if len(data) < size:
        return None
    address = bytes(data[start:end])
    if address_type is SocksAddressType.DOMAIN_NAME:
        if not address.isascii():
            raise SocksRequestError(SocksReply.NOT_ALLOWED, "the name is not ASCII, so not a server name")
        host = address.decode("ascii")
    else:
        host = str(ipaddress.ip_address(address))
    port = int.from_bytes(data[end:size], "big")
    return SocksRequest(SocksCommand.CONNECT, address_type, host, port, size)


# ---------------------------------------------------------------- HTTP


def parse_http_request(data: bytes, ended: bool = False) -> HttpRequest | None:
    """A ``CONNECT host:port`` request or one in absolute form (``http://`` only),
    whose head is at most :data:`MAX_REQUEST_HEAD` bytes."""
    window = data[:MAX_REQUEST_HEAD]
    connection = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_HEAD)
    if window:
        connection.receive_data(window)
    if ended and len(window) == len(data):
        connection.receive_data(b"")  # h11's word for the end of the stream
    try:
        event = connection.next_event()
    except h11.RemoteProtocolError as exc:
        raise HttpRequestError(HTTPStatus(exc.error_status_hint), f"not an HTTP/1.1 request: {exc}") from None
    if event is h11.NEED_DATA:
        if len(data) > len(window):
            too_large = HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
            raise HttpRequestError(too_large, f"the request head is over {MAX_REQUEST_HEAD} bytes")
        return None
    if not isinstance(event, h11.Request):
        raise HttpRequestError(HTTPStatus.BAD_REQUEST, "the client closed before sending a request")
    size = len(window) - len(connection.trailing_data[0])
    target = event.target.decode("ascii")  # h11 admits only visible ASCII in a target
    if event.method == b"CONNECT":
        host, port = _authority(target)
        if not host or port is None or (number := _port(port)) is None:
            raise HttpRequestError(HTTPStatus.BAD_REQUEST, "CONNECT needs host:port")
        return HttpConnect(host, number, size)
    if not target.startswith("http://"):
        raise HttpRequestError(
            HTTPStatus.BAD_REQUEST, "only CONNECT and absolute http:// requests are proxied"
        )
    authority, _, path = target.removeprefix("http://").partition("/")
    host, port = _authority(authority)
    if not host:
        raise HttpRequestError(HTTPStatus.BAD_REQUEST, "the URL names no host")
    number = _port(port) if port else HTTP_DEFAULT_PORT  # RFC 3986 allows an empty port
    if number is None:
        raise HttpRequestError(HTTPStatus.BAD_REQUEST, f"the URL's port is not a number from 0 to {MAX_PORT}")
    return HttpForward(host, number, size, _origin_form(event, path.encode("ascii")))


def _authority(authority: str) -> tuple[str, str | None]:
    """``host:port`` split in two; the port is None if there is none (an IPv6
    literal keeps its brackets and colons)."""
    if ":" not in authority or authority.endswith("]"):
        return authority, None
    host, _, port = authority.rpartition(":")
    return host, port


def _port(text: str) -> int | None:
    """A port written in decimal, or None if ``text`` is not one."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_PORT)):
        return None
    number = int(text)
    return number if number <= MAX_PORT else None


def _origin_form(request: h11.Request, path: bytes) -> bytes:
    """The head of ``request`` to send on: in origin form, one request per connection."""
    kept = [
        name + b": " + value
        for name, value in request.headers.raw_items()
        if not name.lower().startswith(b"proxy-") and name.lower() not in (b"connection", b"keep-alive")
    ]
    line = request.method + b" /" + path + b" HTTP/" + request.http_version
    return b"\r\n".join([line, *kept, b"Connection: close", b"", b""])
