"""Handing a relayed request to the homeserver, exactly as its sender wrote it."""

from __future__ import annotations

import asyncio
from collections import Counter
from enum import Enum

import structlog

log = structlog.get_logger("relay")


class Outcome(Enum):
    """What became of a relayed request at the homeserver."""

    TAKEN = "taken"
    """The homeserver accepted it (2xx)."""
    REFUSED = "refused"
    """Refused for good (a 4xx other than 429): retrying cannot help."""
    LATER = "later"
    """Not taken now (no homeserver, unreachable, 429 or 5xx): try again later, in order."""


async def replay(address: tuple[str, int], request: bytes, timeout: float) -> int:
    """Send ``request`` (one whole HTTP/1.1 request) to the homeserver; its status."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(*address), timeout)
    try:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        status = int(head.split(b" ", 2)[1])
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                await asyncio.wait_for(reader.readexactly(int(line.split(b":", 1)[1])), timeout)
        return status
    finally:
        writer.close()


async def deliver(
    homeserver: tuple[str, int] | None, request: bytes, timeout: float, counters: Counter[str]
) -> Outcome:
    """Replay one request to ``homeserver`` and say what became of it."""
    if homeserver is None:
        counters["envelopes with no homeserver to take them"] += 1
        return Outcome.LATER
    try:
        status = await replay(homeserver, request, timeout)
    except (OSError, TimeoutError, ValueError, IndexError, asyncio.IncompleteReadError) as exc:
        counters["homeserver unreachable"] += 1
        log.info("cannot replay to the homeserver", error=str(exc))
        return Outcome.LATER
    if 200 <= status < 300:
        return Outcome.TAKEN
    counters[f"homeserver answered {status}"] += 1
    if 400 <= status < 500 and status != 429:
        log.warning("the homeserver refused a relayed request", status=status)
        return Outcome.REFUSED
    return Outcome.LATER
