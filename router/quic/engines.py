"""Which QUIC engine carries peerings, and the engine-neutral listen and dial.

Two engines are supported for ``quic://`` peerings: aioquic, the QUIC library
the project was founded on, and qh3, a fork of it with a native packet engine
that moves several times more bytes per processor second (docs/performance.md).
The two interoperate: a node on one peers with a node on the other.  Sessions
always run on aioquic (see :mod:`router.quic.qh3_engine` for why).

An engine's module is imported only when it is chosen, so a node that uses
aioquic starts where qh3 is not installed.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from router.quic.errors import QuicEngineError
from router.quic.peering import Acceptor, PeeringConnection


class QuicEngineName(StrEnum):
    AIOQUIC = "aioquic"
    QH3 = "qh3"


@dataclass(frozen=True, slots=True)
class PeeringEngine:
    """What the engine-neutral code needs of an engine (its module's functions)."""

    name: QuicEngineName
    version: str
    configuration: Callable[..., Any]
    connection: Callable[[Any], Any]
    protocol: Callable[..., PeeringConnection]
    serve: Callable[..., Awaitable[Any]]
    server_transport: Callable[[Any], asyncio.DatagramTransport | None]


def peering_engine(name: QuicEngineName | str) -> PeeringEngine:
    """The engine called ``name``, checked to have what Pinewood relies on;
    :class:`QuicEngineError` if it is unknown, not installed or lacks something."""
    try:
        engine = QuicEngineName(name)
    except ValueError:
        known = ", ".join(e.value for e in QuicEngineName)
        raise QuicEngineError(f"unknown QUIC engine {name!r}; known: {known}") from None
    if engine is QuicEngineName.QH3:
        try:
            from router.quic import qh3_engine as qh3  # noqa: PLC0415 (only when chosen)
        except ImportError as exc:
            raise QuicEngineError(
                f"the QUIC engine qh3 is not installed ({exc}); install it (pip install qh3) "
                'or set quic_engine = "aioquic"'
            ) from None
        qh3.check_qh3()
        return PeeringEngine(
            name=engine,
            version=qh3.qh3_version(),
            configuration=qh3.peering_configuration,
            connection=qh3.client_connection,
            protocol=qh3.Qh3Peering,
            serve=qh3.serve,
            server_transport=qh3.server_transport,
        )
    from router.quic import aioquic_peering as aio  # noqa: PLC0415 (only when chosen)

    aio.check_aioquic()
    return PeeringEngine(
        name=engine,
        version=aio.aioquic_version(),
        configuration=aio.peering_configuration,
        connection=aio.client_connection,
        protocol=aio.AioquicPeering,
        serve=aio.serve,
        server_transport=aio.server_transport,
    )


@dataclass(frozen=True, slots=True)
class PeeringCredentials:
    """The node's certificate and key (PEM), the ALPN and idle timeout of peerings."""

    cert_pem: bytes
    key_pem: bytes
    alpn: str
    idle_timeout: float


class PeeringListener:
    """A UDP socket that accepts peerings' connections."""

    def __init__(self, server: Any, transport: asyncio.DatagramTransport) -> None:
        self._server = server
        self.transport = transport

    def sockname(self) -> Any:
        return self.transport.get_extra_info("sockname")

    def close(self) -> None:
        self._server.close()


async def listen(
    engine: PeeringEngine, host: str, port: int, credentials: PeeringCredentials, accept: Acceptor
) -> PeeringListener:
    """Accept peerings on ``host:port``; ``accept`` is asked for a handler when a
    connection's first stream brings data."""
    config = _configuration(engine, credentials, client=False)
    server = await engine.serve(
        host, port, configuration=config, create_protocol=lambda quic, **_: engine.protocol(quic, accept)
    )
    transport = engine.server_transport(server)
    if transport is None:  # the engine's check makes sure the listener keeps it
        server.close()
        raise QuicEngineError(f"{engine.name} made a listener without a socket")
    return PeeringListener(server, transport)


async def dial(
    engine: PeeringEngine, host: str, port: int, credentials: PeeringCredentials, timeout: float
) -> PeeringConnection:
    """A connection to ``host:port`` whose handshake has completed, on a UDP socket
    of its own (closed by :meth:`PeeringConnection.close_socket`)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    family, _, _, _, address = infos[0]
    quic = engine.connection(_configuration(engine, credentials, client=True))
    bind = ("::", 0) if family == socket.AF_INET6 else ("0.0.0.0", 0)
    transport, protocol = await loop.create_datagram_endpoint(lambda: engine.protocol(quic), local_addr=bind)
    assert isinstance(protocol, PeeringConnection)
    protocol.owns_socket = True
    protocol.peer_address = (str(address[0]), int(address[1]))
    try:
        protocol.start(address)
        await asyncio.wait_for(asyncio.shield(protocol.handshake), timeout)
    except BaseException:
        protocol.shut()
        transport.close()
        raise
    return protocol


def _configuration(engine: PeeringEngine, credentials: PeeringCredentials, *, client: bool) -> Any:
    return engine.configuration(
        credentials.cert_pem,
        credentials.key_pem,
        alpn=credentials.alpn,
        idle_timeout=credentials.idle_timeout,
        client=client,
    )
