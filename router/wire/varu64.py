"""varu64: Pinecone's variable-length unsigned integer.

Big-endian base 128: the most significant 7-bit group comes first and every byte
except the last has its top bit (0x80) set, so 300 encodes as ``82 2c``.  This is
*not* LEB128 (which is little-endian).  Reference: ``types/varu64.go``.

The reference decoder is lax (it stops at the end of its input without error and
accepts redundant leading groups).  Ours is strict: truncated input, more than
ten bytes, values past 64 bits and non-minimal encodings are all errors.  The
reference encoder only ever produces minimal encodings, so strictness costs no
interoperability and guarantees that ``encode(decode(b)) == b``.
"""

from __future__ import annotations

from router.wire.errors import DecodeError, EncodeError

VARU64_MAX_BYTES = 10
UINT64_MAX = (1 << 64) - 1


def varu64_length(value: int) -> int:
    """Number of bytes :func:`encode_varu64` produces for ``value``."""
    return max(1, (value.bit_length() + 6) // 7)


def encode_varu64(value: int) -> bytes:
    """Encode ``value`` (0 <= value < 2**64) as a varu64."""
    if value < 0x80:
        if value < 0:
            raise EncodeError(f"varu64 cannot encode negative value {value}")
        return bytes((value,))
    if value > UINT64_MAX:
        raise EncodeError(f"varu64 cannot encode {value}: wider than 64 bits")
    out = bytearray((value & 0x7F,))
    value >>= 7
    while value:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.reverse()
    return bytes(out)


def decode_varu64(data: bytes | bytearray | memoryview, offset: int = 0) -> tuple[int, int]:
    """Decode a varu64 at ``data[offset:]``; return ``(value, offset_after)``."""
    end = len(data)
    if offset >= end:
        raise DecodeError("varu64 truncated: no bytes")
    b = data[offset]
    if b < 0x80:
        return b, offset + 1
    if b == 0x80:
        raise DecodeError("varu64 not minimally encoded (leading zero group)")
    value = b & 0x7F
    i = offset + 1
    limit = offset + VARU64_MAX_BYTES
    while True:
        if i >= end:
            raise DecodeError("varu64 truncated: continuation bit set on last byte")
        if i >= limit:
            raise DecodeError(f"varu64 longer than {VARU64_MAX_BYTES} bytes")
        b = data[i]
        value = (value << 7) | (b & 0x7F)
        i += 1
        if b < 0x80:
            break
    if value > UINT64_MAX:
        raise DecodeError("varu64 overflows 64 bits")
    return value, i
