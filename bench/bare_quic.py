"""The QUIC baseline for ``bench.throughput --link quic``: one aioquic stream
between two processes, the sender writing 64 KiB at a time as fast as aioquic
and the network take them, the receiver counting bytes.

    python -m bench.bare_quic serve PORT
    python -m bench.bare_quic send PORT SECONDS     # prints "MB/s <figure>"

Both run on asyncio's own event loop, aioquic's stock protocol's best: under
uvloop, whose clock moves in milliseconds, its pacing holds it back.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import sys
import time

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import serve
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import QuicEvent, StreamDataReceived

from router.links.tls import node_credentials
from router.quic.aioquic_engine import stream_buffered_bytes
from router.wire.keys import Identity

ALPN = "bench"


class Counter(QuicConnectionProtocol):
    """Counts the bytes of the stream; answers the total when it ends."""

    received = 0

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, StreamDataReceived):
            Counter.received += len(event.data)
            if event.end_stream:
                self._quic.send_stream_data(event.stream_id, str(Counter.received).encode(), end_stream=True)
                self.transmit()


def config(client: bool) -> QuicConfiguration:
    identity = Identity.generate()
    configuration = QuicConfiguration(is_client=client, alpn_protocols=[ALPN], verify_mode=ssl.CERT_NONE)
    configuration.certificate, configuration.private_key = node_credentials(identity)
    return configuration


async def run_server(port: int) -> None:
    await serve("127.0.0.1", port, configuration=config(False), create_protocol=Counter)
    print("ready", flush=True)
    await asyncio.Event().wait()


def unsent(protocol: QuicConnectionProtocol, stream_id: int) -> int:
    # aioquic offers no public way to the connection behind a client protocol.
    return stream_buffered_bytes(protocol._quic, stream_id)


async def run_sender(port: int, seconds: float) -> None:
    chunk = os.urandom(1024) * 64
    async with connect("127.0.0.1", port, configuration=config(True)) as protocol:
        reader, writer = await protocol.create_stream()
        started = time.monotonic()
        stream_id = writer.get_extra_info("stream_id")
        while time.monotonic() - started < seconds:
            writer.write(chunk)
            await writer.drain()
            # aioquic's drain does not wait for the network: hold the sender back
            # while more than 1 MiB is unsent (as the router's QUIC links do), so
            # it does not buffer without bound and time out on a loaded machine.
            while unsent(protocol, stream_id) > 1 << 20:
                await asyncio.sleep(0.0005)
            await asyncio.sleep(0)  # let acknowledgements in
        writer.write_eof()
        received = int(await reader.read())
        elapsed = time.monotonic() - started
    print(f"MB/s {received / elapsed / 1e6:.2f}")


def main() -> None:
    if sys.argv[1] == "serve":
        asyncio.run(run_server(int(sys.argv[2])))
    else:
        asyncio.run(run_sender(int(sys.argv[2]), float(sys.argv[3])))


if __name__ == "__main__":
    main()
