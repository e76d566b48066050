"""The QUIC baselines for ``bench.throughput --link quic`` and ``bench.sessions``:
one stream of a QUIC library's own stock client and server between two
processes, the sender writing 64 KiB at a time as fast as the library and the
network take them, the receiver counting bytes.

    python -m bench.bare_quic ENGINE serve PORT
    python -m bench.bare_quic ENGINE send PORT SECONDS     # prints "MB/s <figure>"

ENGINE is ``aioquic`` or ``qh3``.  Both run on asyncio's own event loop, the
stock protocols' best: under uvloop, whose clock moves in milliseconds, aioquic's
pacing holds it back.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import ssl
import sys
import time
from typing import Any

import aioquic.asyncio
import aioquic.asyncio.client
import aioquic.asyncio.server
import aioquic.quic.configuration
import aioquic.quic.events
import qh3.asyncio
import qh3.asyncio.client
import qh3.asyncio.server
import qh3.quic.configuration
import qh3.quic.events
import qh3.tls

from router.links.tls import certificate_pem, node_credentials
from router.quic.aioquic_hooks import stream_buffered_bytes
from router.wire.keys import Identity

ALPN = "bench"
ENGINES = ("aioquic", "qh3")
received = 0


def counter(engine: str) -> type:
    """The server's protocol: counts the bytes of the stream, answers the total when it ends."""
    asyncio_api = aioquic.asyncio if engine == "aioquic" else qh3.asyncio
    data_event = (aioquic.quic.events if engine == "aioquic" else qh3.quic.events).StreamDataReceived

    class Counter(asyncio_api.QuicConnectionProtocol):  # type: ignore[name-defined,misc]
        def quic_event_received(self, event: Any) -> None:
            global received  # noqa: PLW0603 (one connection per server process)
            if isinstance(event, data_event):
                received += len(event.data)
                if event.end_stream:
                    self._quic.send_stream_data(event.stream_id, str(received).encode(), end_stream=True)
                    self.transmit()

    return Counter


def config(engine: str, client: bool) -> Any:
    identity = Identity.generate()
    if engine == "aioquic":
        configuration: Any = aioquic.quic.configuration.QuicConfiguration(
            is_client=client, alpn_protocols=[ALPN], verify_mode=ssl.CERT_NONE
        )
        configuration.certificate, configuration.private_key = node_credentials(identity)
        return configuration
    configuration = qh3.quic.configuration.QuicConfiguration(
        is_client=client, alpn_protocols=[ALPN], verify_mode=ssl.CERT_NONE
    )
    configuration.load_cert_chain(*certificate_pem(identity, datetime.datetime.now(datetime.UTC)))
    if client:  # qh3 leaves EdDSA out of what a client offers by default
        configuration.signature_algorithms = [qh3.tls.SignatureAlgorithm.ED25519]
    return configuration


async def run_server(engine: str, port: int) -> None:
    serve = aioquic.asyncio.server.serve if engine == "aioquic" else qh3.asyncio.server.serve
    await serve("127.0.0.1", port, configuration=config(engine, False), create_protocol=counter(engine))
    print("ready", flush=True)
    await asyncio.Event().wait()


def unsent(engine: str, protocol: Any, stream_id: int) -> int:
    # Neither library offers a public way to the connection behind a client protocol.
    if engine == "aioquic":
        return stream_buffered_bytes(protocol._quic, stream_id)
    sent: int = protocol._quic.get_send_buffer_size(stream_id)
    return sent


async def run_sender(engine: str, port: int, seconds: float) -> None:
    chunk = os.urandom(1024) * 64
    connect = aioquic.asyncio.client.connect if engine == "aioquic" else qh3.asyncio.client.connect
    async with connect("127.0.0.1", port, configuration=config(engine, True)) as protocol:
        reader, writer = await protocol.create_stream()
        started = time.monotonic()
        stream_id = writer.get_extra_info("stream_id")
        while time.monotonic() - started < seconds:
            writer.write(chunk)
            # Neither library's drain waits for the network: hold the sender back
            # while more than 1 MiB is unsent (as the router's QUIC links do), so
            # it does not buffer without bound and time out on a loaded machine.
            while unsent(engine, protocol, stream_id) > 1 << 20:
                await asyncio.sleep(0.0005)
            await asyncio.sleep(0)  # let acknowledgements in
        writer.write_eof()
        received = int(await reader.read())
        elapsed = time.monotonic() - started
    print(f"MB/s {received / elapsed / 1e6:.2f}")


def main() -> None:
    engine, command = sys.argv[1], sys.argv[2]
    if engine not in ENGINES:
        raise SystemExit(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")
    if command == "serve":
        asyncio.run(run_server(engine, int(sys.argv[3])))
    else:
        asyncio.run(run_sender(engine, int(sys.argv[3]), float(sys.argv[4])))


if __name__ == "__main__":
    main()
