"""QUIC peering connections: the handshake as the dialler sees it, on loopback."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import cast

from aioquic.asyncio.server import serve
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import HandshakeCompleted, QuicEvent

from router.links.owner import LinkOwner
from router.links.quic import QuicPeerProtocol, configuration
from router.quic.engine import server_transport
from router.wire.keys import Identity


class UnusedOwner:
    """No stream is opened in these tests, so no link (the only user of its owner)
    is made: any use of the owner fails the test."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the link owner was used: {name}")


NO_NODE = cast(LinkOwner, UnusedOwner())


class WatchedProtocol(QuicPeerProtocol):
    """Notes when the connection reports its handshake complete, apart from the
    dialler's future that the tests look at."""

    handshake_reported = False

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, HandshakeCompleted):
            self.handshake_reported = True
        super().quic_event_received(event)


async def _client(identity: Identity) -> tuple[asyncio.DatagramTransport, WatchedProtocol]:
    loop = asyncio.get_running_loop()
    connection = QuicConnection(configuration=configuration(identity, client=True))
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: WatchedProtocol(connection, NO_NODE, "quic://test"), local_addr=("127.0.0.1", 0)
    )
    return transport, protocol


def test_a_handshake_that_completes_before_anyone_waits_is_not_missed() -> None:
    """aioquic's ``wait_connected`` misses a handshake that completed before it
    was called; on a busy machine that happens between sending the Initial and
    starting to wait, and the dial then timed out.  The dialler's own future sees it."""

    async def main() -> None:
        server_identity, client_identity = Identity.generate(), Identity.generate()
        server = await serve(
            "127.0.0.1",
            0,
            configuration=configuration(server_identity, client=False),
            create_protocol=partial(QuicPeerProtocol, node=NO_NODE, outbound=None),
        )
        listener = server_transport(server)
        assert listener is not None
        port = listener.get_extra_info("sockname")[1]
        transport, client = await _client(client_identity)
        try:
            client.connect(("127.0.0.1", port))
            for _ in range(500):  # let the handshake finish with nobody waiting
                await asyncio.sleep(0.01)
                if client.handshake_reported:
                    break
            assert client.handshake_reported
            await asyncio.wait_for(asyncio.shield(client.handshake), 1.0)
            assert client.certificate_key() == bytes(server_identity.public_key)
        finally:
            client.close()
            transport.close()
            server.close()

    asyncio.run(main())


def test_a_connection_that_ends_before_its_handshake_fails_the_dial_at_once() -> None:
    async def main() -> None:
        transport, client = await _client(Identity.generate())
        try:
            client.connect(("127.0.0.1", 9))  # nobody answers
            client.connection_ended("closed")
            done, _ = await asyncio.wait([client.handshake], timeout=1.0)
            assert done and isinstance(client.handshake.exception(), ConnectionError)
        finally:
            transport.close()

    asyncio.run(main())
