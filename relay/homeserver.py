"""Handing a relayed request to the homeserver, exactly as its sender wrote it.

A relayed request is checked as the inbound gateway checks one that arrives on
a session stream (:mod:`router.matrix.federation`): a server-server API path,
and a signed origin that names the node that sealed the envelope."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from enum import Enum

import h11

from relay.errors import RelayError
from router.logs import get_logger
from router.matrix.federation import DEFAULT_PATHS, Refusal, check_origin, check_path

log = get_logger("pinewood.relay")


class Outcome(Enum):
    """What became of a relayed request at the homeserver."""

    TAKEN = "taken"
    """The homeserver accepted it (2xx)."""
    REFUSED = "refused"
    """Refused for good (a 4xx other than 429): retrying cannot help."""
    LATER = "later"
    """Not taken now (no homeserver, unreachable, 429 or 5xx): try again later, in order."""


MAX_ANSWER_BYTES = 1 << 20
"""The most of a homeserver's answer body that is read (and dropped) before giving up on it."""
READ_CHUNK = 65536


class ReplayError(RelayError):
    """A relayed request that is not one whole HTTP/1.1 request: it can never be delivered."""


class HomeserverUnreachable(RelayError):
    """The homeserver could not be reached, broke off, or did not answer HTTP in
    time: the request may be offered again later."""


class ReplayRefused(ReplayError):
    """A relayed request the homeserver is not to be offered (``refusal`` says why)."""

    def __init__(self, refusal: Refusal, detail: str = "") -> None:
        super().__init__(refusal.value + (f" ({detail})" if detail else ""))
        self.refusal = refusal


@dataclass(frozen=True, slots=True)
class ReplayPolicy:
    """Which relayed requests may reach the homeserver."""

    paths: tuple[str, ...] = DEFAULT_PATHS
    server_name_suffix: str = ""

    def check(self, request: h11.Request, sender: bytes) -> None:
        """Raise :class:`ReplayRefused` unless ``sender`` may send ``request``."""
        refusal = check_path(request.target, self.paths)
        if refusal is not None:
            raise ReplayRefused(refusal)
        headers = [(bytes(k), bytes(v)) for k, v in request.headers]
        found = check_origin(request.target, headers, sender, self.server_name_suffix)
        if found is not None:
            raise ReplayRefused(*found)


def parse_request(raw: bytes) -> tuple[h11.Request, bytes]:
    """The head and body of the one whole HTTP/1.1 request in ``raw``."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(raw)
    conn.receive_data(b"")
    body = bytearray()
    request: h11.Request | None = None
    try:
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                raise ReplayError("not one whole HTTP request")
    except h11.RemoteProtocolError as exc:
        raise ReplayError(f"not an HTTP request: {exc}") from None
    assert request is not None
    return request, bytes(body)


async def replay(
    address: tuple[str, int], raw: bytes, timeout: float, sender: bytes, policy: ReplayPolicy
) -> int:
    """Send the request in ``raw`` (as its sender wrote it: method, target,
    headers and body) to the homeserver, if ``policy`` lets ``sender`` send
    it; the status it answers.  :class:`ReplayError` if it is not to be
    delivered, :class:`HomeserverUnreachable` if it could not be, now."""
    request, body = parse_request(raw)
    policy.check(request, sender)
    conn = h11.Connection(h11.CLIENT)
    try:
        head = h11.Request(
            method=request.method,
            target=request.target,
            headers=request.headers.raw_items(),
            http_version=request.http_version,
        )
        parts = [
            conn.send(head),
            conn.send(h11.Data(data=body)) if body else None,
            conn.send(h11.EndOfMessage()),
        ]
    except h11.ProtocolError as exc:
        raise ReplayError(f"cannot be sent on as HTTP/1.1: {exc}") from None
    out = b"".join(part for part in parts if part)
    try:
        return await _exchange(address, conn, out, timeout)
    except TimeoutError as exc:  # before OSError, of which it is a kind
        raise HomeserverUnreachable(f"no answer within {timeout:g} s") from exc
    except OSError as exc:
        raise HomeserverUnreachable(str(exc)) from exc


async def _exchange(address: tuple[str, int], conn: h11.Connection, out: bytes, timeout: float) -> int:
    """Send ``out`` to the homeserver and read the status of its answer."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(*address), timeout)
    try:
        writer.write(out)
        await writer.drain()
        status: int | None = None
        seen = 0
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise HomeserverUnreachable(f"the homeserver's answer is not HTTP: {exc}") from None
            if event is h11.NEED_DATA:
                data = await asyncio.wait_for(reader.read(READ_CHUNK), timeout)
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                seen += len(event.data)
                if seen > MAX_ANSWER_BYTES:
                    break  # the status is what counts; the rest is not read
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                break
        if status is None:
            raise HomeserverUnreachable("the homeserver closed the connection without answering")
        return status
    finally:
        writer.close()


async def deliver(
    homeserver: tuple[str, int] | None,
    request: bytes,
    timeout: float,
    counters: Counter[str],
    sender: bytes,
    policy: ReplayPolicy,
) -> Outcome:
    """Replay one request from ``sender`` to ``homeserver`` and say what became of it."""
    if homeserver is None:
        counters["envelopes with no homeserver to take them"] += 1
        return Outcome.LATER
    try:
        status = await replay(homeserver, request, timeout, sender, policy)
    except ReplayRefused as exc:
        counters[f"envelopes refused: {exc.refusal.value}"] += 1
        log.warning(
            "dropping a relayed request the homeserver is not offered", reason=str(exc), sender=sender.hex()
        )
        return Outcome.REFUSED
    except ReplayError as exc:
        counters["undeliverable envelopes"] += 1
        log.warning("dropping a relayed request that is not HTTP", reason=str(exc))
        return Outcome.REFUSED
    except HomeserverUnreachable as exc:
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
