"""Federation to a node that is away: transactions are left on its relays.

When the destination cannot be reached within the session timeout but has
published relays, the gateway still opens the homeserver's tunnel and answers
it itself.  Each ``PUT /_matrix/federation/v1/send/{txnId}`` (a federation
transaction) is sealed, exactly as the homeserver sent it, into an envelope for
the destination, deposited on one of its relays, and answered as delivered;
the destination replays it to its own homeserver when it returns.  Any other
request fails at once with 503, as it would for a server that is down.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable
from http import HTTPStatus

from relay.envelope import MAX_ENVELOPE_BYTES
from router.gateway.tunnel import ByteSide
from router.http.requests import RequestError, RequestReader, error_response

MAX_HEAD = 16 * 1024
MAX_BODY = MAX_ENVELOPE_BYTES - 64 * 1024
TRANSACTION_PREFIX = b"/_matrix/federation/v1/send/"


def _json(body: dict[str, object]) -> bytes:
    return json.dumps(body).encode()


async def serve_away(
    side: ByteSide,
    deposit: Callable[[bytes], Awaitable[None]],
    idle_timeout: float,
    counters: Counter[str],
) -> None:
    """Answer the homeserver's requests for a destination that is away."""
    reader = RequestReader(side.read, max_head=MAX_HEAD, max_body=MAX_BODY)
    while True:
        try:
            request = await reader.next(idle_timeout)
        except TimeoutError:
            request = None
        except RequestError as exc:
            counters["away: requests refused"] += 1
            body = json.dumps({"errcode": "M_UNKNOWN", "error": f"not relayed: {exc}"})
            await side.write(error_response(exc.status, body, "application/json"))
            await side.finish()
            return
        if request is None:
            await side.finish()
            return
        if request.method != b"PUT" or not request.target.startswith(TRANSACTION_PREFIX):
            counters["away: requests failed fast"] += 1
            answer = _json({"errcode": "M_UNKNOWN", "error": "the server is away"})
            await side.write(reader.respond(HTTPStatus.SERVICE_UNAVAILABLE, answer))
        else:
            try:
                await deposit(request.raw)  # byte for byte as the homeserver sent it
            except Exception as exc:  # any failure to deposit: the homeserver retries later
                counters["away: deposits failed"] += 1
                answer = _json({"errcode": "M_UNKNOWN", "error": f"not relayed: {exc}"})
                await side.write(reader.respond(HTTPStatus.SERVICE_UNAVAILABLE, answer))
            else:
                counters["away: transactions relayed"] += 1
                await side.write(reader.respond(HTTPStatus.OK, _json({"pdus": {}})))
        if reader.must_close:
            await side.finish()
            return
