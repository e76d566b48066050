"""What moves envelopes for a node's relay client: registering its mailboxes,
depositing for others and fetching its own (see :mod:`relay.client`).

Loaded only by a node that has mailboxes or deposits for another, with the
relay protocol's messages and calls.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

from relay.envelope import EnvelopeError, new_id, open_envelope, seal, seal_to
from relay.errors import CallError, InboxError, RelayUnavailable
from relay.homeserver import Outcome, deliver
from relay.messages import Ack, Deposit, Fetch, Forward, Refused, Register, Sealed, encode_sealed_deposit
from relay.protocol import ProtocolError
from router.logs import get_logger

if TYPE_CHECKING:
    from relay.client import RelayClient

log = get_logger("pinewood.relay")

CALL_TIMEOUT_S = 15.0
FETCH_LIMIT = 100
"""Envelopes asked for in one fetch; a full answer means more may be waiting."""


async def register_all(client: RelayClient) -> None:
    """Register (or renew) our mailbox on each of our relays."""
    expires = int(time.time() + client.settings.lifetime_s)
    for relay, (mailbox, secret) in client.mailboxes.items():
        try:
            answer = await client.calls.call(relay, Register(mailbox, secret, expires), CALL_TIMEOUT_S)
        except (CallError, ProtocolError) as exc:
            client.counters["mailbox registrations failed"] += 1
            log.info("cannot register a mailbox", relay=relay.hex(), error=str(exc))
            continue
        if isinstance(answer, Refused):
            log.warning("relay refused our mailbox", relay=relay.hex(), answer=answer.message)
        else:
            client.registered.add(relay)
            client.counters["mailboxes registered"] += 1


async def deposit(client: RelayClient, recipient: bytes, payload: bytes) -> bytes:
    """Leave ``payload`` for ``recipient`` on one of its relays; the relay's key."""
    record = await client.lookup(recipient)
    if record is None or not record.relays:
        client.counters["deposits without a record"] += 1
        raise RelayUnavailable("the destination has published no relays that this node can find")
    envelope_id = new_id()
    now = time.time()
    body = seal(client.identity, recipient, envelope_id, int(now), payload)
    expires = int(now + client.settings.lifetime_s)
    failures = []
    for entry in record.relays:
        inner = encode_sealed_deposit(Deposit(entry.mailbox, envelope_id, expires, body))
        sealed = seal_to(entry.relay, inner)
        hops = [r for r in client.settings.relays if r not in (entry.relay, recipient)]
        attempts: list[tuple[bytes, Forward | Sealed]] = [(via, Forward(entry.relay, sealed)) for via in hops]
        if not attempts and client.settings.allow_direct:
            attempts = [(entry.relay, Sealed(sealed))]
        for via, request in attempts:
            try:
                answer = await client.calls.call(via, request, CALL_TIMEOUT_S)
            except (CallError, ProtocolError) as exc:
                failures.append(f"{via.hex()[:12]}: {exc}")
                continue
            if isinstance(answer, Refused):
                failures.append(f"{via.hex()[:12]}: {answer.code}: {answer.message}")
                continue
            client.counters["envelopes deposited"] += 1
            return entry.relay
        if not attempts:
            failures.append("no intermediate relay of our own to forward through")
    client.counters["deposits failed"] += 1
    raise RelayUnavailable("no relay took the envelope: " + "; ".join(failures))


async def fetch_all(client: RelayClient) -> int:
    """Fetch every mailbox, deliver what is new, acknowledge; how many were delivered."""
    delivered = 0
    for relay, (mailbox, secret) in client.mailboxes.items():
        try:
            delivered += await _fetch(client, relay, mailbox, secret)
        except (CallError, ProtocolError, InboxError) as exc:
            client.counters["fetches failed"] += 1
            log.debug("cannot fetch a mailbox", relay=relay.hex(), error=str(exc))
    if client.inbox is not None:
        with contextlib.suppress(InboxError):
            await client.inbox.sweep(time.time())
    client.counters["fetch rounds"] += 1
    return delivered


async def _fetch(client: RelayClient, relay: bytes, mailbox: bytes, secret: bytes) -> int:
    assert client.inbox is not None
    delivered = 0
    while True:
        answer = await client.calls.call(relay, Fetch(mailbox, secret, FETCH_LIMIT), CALL_TIMEOUT_S)
        if isinstance(answer, Refused):
            log.info("relay refused a fetch", relay=relay.hex(), answer=answer.message)
            return delivered
        if not answer.envelopes and not answer.skipped:
            return delivered
        if answer.skipped:
            client.counters["malformed envelopes from a relay"] += answer.skipped
        done: list[bytes] = []
        stop = False
        for envelope in answer.envelopes:
            envelope_id = envelope.envelope_id
            if await client.inbox.seen(envelope_id):
                client.counters["duplicates dropped"] += 1
                done.append(envelope_id)
                continue
            try:
                opened = open_envelope(client.identity, envelope_id, envelope.body)
            except EnvelopeError as exc:
                client.counters["undeliverable envelopes"] += 1
                log.warning("dropping an envelope that does not open", reason=str(exc))
                done.append(envelope_id)
                continue
            outcome = await deliver(
                client.settings.homeserver,
                opened.payload,
                CALL_TIMEOUT_S,
                client.counters,
                opened.sender,
                client.settings.replay_policy,
            )
            if outcome is Outcome.LATER:
                stop = True  # keep order: try again later from here
                break
            await client.inbox.add(envelope_id, float(envelope.expires) + 86400.0)
            if outcome is Outcome.TAKEN:
                client.counters["envelopes delivered"] += 1
                delivered += 1
            done.append(envelope_id)
        if done:
            await client.calls.call(relay, Ack(mailbox, secret, tuple(done)), CALL_TIMEOUT_S)
        if stop or len(answer.envelopes) + answer.skipped < FETCH_LIMIT:
            return delivered
