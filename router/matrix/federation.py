"""Which inbound requests a homeserver beside a router is offered.

A homeserver's federation listener often serves more than federation: Dendrite
serves every API on one listener, and Synapse may list client or admin
resources on the same port.  Every node of the overlay can open a stream to
the gateway, so only what servers ask of each other goes through:

* ``/_matrix/federation/``: the server-server API, authenticated media
  (``v1/media/download``, ``v1/media/thumbnail``) included;
* ``/_matrix/key/``: a server's own keys (``v2/server``) and keys it vouches
  for (``v2/query``);
* ``/_matrix/media/{v3,r0}/{download,thumbnail}/``: the unauthenticated media
  paths that servers still fall back to when the authenticated ones are
  missing (Synapse tries ``v1/media/download``, then ``v3``, then ``r0``).

A federation request carries the name of the server that signed it in its
``Authorization: X-Matrix origin=...`` header.  The homeserver pays for
checking it (a key fetch over the overlay, a signature check); the gateway
already knows which node opened the session, so a request whose origin names
another server is refused before the homeserver sees it.  The few federation
endpoints the spec serves unsigned (the version, OpenID user info) pass
without one.

Sans-I/O: each function looks at a request's head.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from enum import Enum
from http import HTTPStatus
from urllib.parse import unquote

from router.matrix.names import key_for_name

ALPN = "matrix"
"""The session protocol (ALPN) federation requests travel over between nodes."""
FEDERATION_PREFIX = "/_matrix/federation/"
DEFAULT_PATHS: tuple[str, ...] = (
    FEDERATION_PREFIX,
    "/_matrix/key/",
    "/_matrix/media/v3/download/",
    "/_matrix/media/v3/thumbnail/",
    "/_matrix/media/r0/download/",
    "/_matrix/media/r0/thumbnail/",
)
"""Path prefixes offered to the overlay: the server-server API and nothing else."""

UNSIGNED_FEDERATION_PATHS: tuple[str, ...] = (
    "/_matrix/federation/v1/version",
    "/_matrix/federation/v1/openid/userinfo",
)
"""Federation endpoints the spec serves without X-Matrix authorization."""

MAX_ORIGIN_SHOWN = 80
"""The most of a claimed origin quoted back in an answer or a log line."""


class Refusal(Enum):
    """Why the gateway answers a request itself instead of passing it on."""

    NOT_FEDERATION = "not a server-server API path"
    UNSAFE_PATH = "a path with dot segments, backslashes or a fragment"
    UNSIGNED = "a federation request without X-Matrix authorization"
    MALFORMED_AUTH = "an X-Matrix authorization without one origin"
    FORGED_ORIGIN = "the X-Matrix origin is not the node that sent the request"
    OVER_RATE = "over this node's share of requests"
    NOT_HTTP = "not an HTTP/1.1 request"

    @property
    def status(self) -> HTTPStatus:
        return _STATUS[self]

    @property
    def counter(self) -> str:
        """The key it is counted under."""
        return f"refused {self.status.value}: {self.value}"

    def answer(self, detail: str = "") -> bytes:
        """A Matrix error body that says why."""
        text = self.value + (f" ({detail})" if detail else "")
        return json.dumps({"errcode": _ERRCODE[self.status], "error": text}).encode()


_STATUS = {
    Refusal.NOT_FEDERATION: HTTPStatus.NOT_FOUND,
    Refusal.UNSAFE_PATH: HTTPStatus.NOT_FOUND,
    Refusal.UNSIGNED: HTTPStatus.UNAUTHORIZED,
    Refusal.MALFORMED_AUTH: HTTPStatus.UNAUTHORIZED,
    Refusal.FORGED_ORIGIN: HTTPStatus.UNAUTHORIZED,
    Refusal.OVER_RATE: HTTPStatus.TOO_MANY_REQUESTS,
    Refusal.NOT_HTTP: HTTPStatus.BAD_REQUEST,
}
_ERRCODE = {
    HTTPStatus.NOT_FOUND: "M_UNRECOGNIZED",
    HTTPStatus.UNAUTHORIZED: "M_UNAUTHORIZED",
    HTTPStatus.TOO_MANY_REQUESTS: "M_LIMIT_EXCEEDED",
    HTTPStatus.BAD_REQUEST: "M_NOT_JSON",
}


def request_path(target: bytes) -> str | None:
    """The path of an origin-form request target, or None for any other form
    (absolute, authority, ``*``) or bytes that are not ASCII."""
    if not target.startswith(b"/"):
        return None
    try:
        return target.split(b"?", 1)[0].decode("ascii")
    except UnicodeDecodeError:
        return None


def check_path(target: bytes, allowed: Sequence[str]) -> Refusal | None:
    """Whether a request for ``target`` may reach the homeserver.

    The path must start with an allowed prefix both as sent and with its
    percent-escapes decoded (servers route on either), and hold no segment a
    server might resolve upwards (``..``, ``.``, encoded or not) and no
    backslash, so that no spelling of a path leaves the prefix it matched."""
    path = request_path(target)
    if path is None:
        return Refusal.NOT_FEDERATION
    decoded = unquote(path, errors="replace")
    for form in (path, decoded):
        if "\\" in form or "#" in form or "\x00" in form:
            return Refusal.UNSAFE_PATH
        if any(segment in (".", "..") for segment in form.split("/")):
            return Refusal.UNSAFE_PATH
    if not all(any(form.startswith(prefix) for prefix in allowed) for form in (path, decoded)):
        return Refusal.NOT_FEDERATION
    return None


def xmatrix_origins(headers: Iterable[tuple[bytes, bytes]]) -> list[str | None]:
    """The origin of each ``Authorization: X-Matrix`` header (header names in
    lower case); None for one that names no origin, or names it twice."""
    origins: list[str | None] = []
    for name, value in headers:
        if name != b"authorization":
            continue
        text = value.decode("latin-1").strip()
        scheme, _, rest = text.partition(" ")
        if scheme.lower() != "x-matrix":
            continue
        found = [v for k, v in _auth_params(rest) if k == "origin"]
        origins.append(found[0] if len(found) == 1 else None)
    return origins


def _auth_params(text: str) -> list[tuple[str, str]]:
    """``name=value`` pairs, comma separated, values bare or quoted (RFC 9110 auth-params)."""
    params: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t,":
            i += 1
        equals = text.find("=", i)
        if equals < 0:
            break
        name = text[i:equals].strip().lower()
        i = equals + 1
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] == '"':
            value = []
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                value.append(text[i])
                i += 1
            i += 1  # the closing quote
            params.append((name, "".join(value)))
        else:
            end = text.find(",", i)
            end = n if end < 0 else end
            params.append((name, text[i:end].strip()))
            i = end
    return params


def check_origin(
    target: bytes, headers: Iterable[tuple[bytes, bytes]], peer: bytes, suffix: str
) -> tuple[Refusal, str] | None:
    """Whether the request's signed origin is the node ``peer`` that opened
    the session (in either name form, with or without ``suffix``); a
    federation request must name one unless the spec serves it unsigned.
    The refusal comes with the origin claimed, shortened, for the answer."""
    origins = xmatrix_origins(headers)
    path = request_path(target) or ""
    if not origins:
        if path.startswith(FEDERATION_PREFIX) and path not in UNSIGNED_FEDERATION_PATHS:
            return Refusal.UNSIGNED, ""
        return None
    for origin in origins:
        if origin is None:
            return Refusal.MALFORMED_AUTH, ""
        if key_for_name(origin, suffix) != peer:
            return Refusal.FORGED_ORIGIN, origin[:MAX_ORIGIN_SHOWN]
    return None
