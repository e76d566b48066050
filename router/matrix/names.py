"""Server names that stand for node keys.

A homeserver beside a Pinewood router is named after the router's key, so that
any other homeserver can reach it with no DNS.  Two forms name the same key:

* the 64-character hex key, which P2P Dendrite uses as its server name;
* 52 lower-case base32 characters (RFC 4648 alphabet, no padding), because a
  TLS client refuses a DNS label longer than 63 characters and so cannot verify
  a certificate for the hex form; Synapse needs this one.

Either may carry the operator's configured suffix (``.p2p``, say).  Any other
name maps to nothing, and the gateway refuses it rather than sending it to the
internet.
"""

from __future__ import annotations

import base64
import string

KEY_BYTES = 32
BASE32_CHARS = 52
_BASE32 = frozenset(string.ascii_lowercase + "234567")
_HEX = frozenset(string.hexdigits.lower())


def server_name(key: bytes, suffix: str = "") -> str:
    """The DNS-safe server name of ``key``: 52 base32 characters, then ``suffix``."""
    if len(key) != KEY_BYTES:
        raise ValueError("a node key is 32 bytes")
    return base64.b32encode(key).decode("ascii").rstrip("=").lower() + suffix


def key_for_name(name: str, suffix: str = "") -> bytes | None:
    """The key a server name stands for, or None if it names no key.

    ``name`` may carry a port (``name:8448``); it is ignored.
    """
    host = name.strip().lower()
    if host.startswith("["):
        return None  # an IPv6 literal
    host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    host = host.rstrip(".")
    if suffix and host.endswith(suffix.lower()):
        host = host[: -len(suffix)]
    if len(host) == 2 * KEY_BYTES and set(host) <= _HEX:
        return bytes.fromhex(host)
    if len(host) == BASE32_CHARS and set(host) <= _BASE32:
        key = base64.b32decode(host.upper() + "====")
        # 52 characters hold 260 bits: the 4 spare bits must be zero, so that
        # one key has exactly one name.
        return key if server_name(key) == host else None
    return None
