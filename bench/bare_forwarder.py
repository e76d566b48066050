"""The baseline for ``bench.throughput``: a bare forwarder of length-prefixed frames.

It does the least any Python forwarder must: read a TCP stream, cut it into
frames by their length field (bytes 8-9, as in a Pinecone header), and write
them on to the next hop, batched per read, with uvloop.  No routing, no keys.
The last process in a chain (no ``--forward``) counts frames and prints
``count <frames> <monotonic time>`` lines every 0.2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import uvloop

SKIP_HANDSHAKE = 104


class Forwarder(asyncio.Protocol):
    def __init__(self, onward: asyncio.Transport | None, counter: list[int]) -> None:
        self.onward = onward
        self.counter = counter
        self.buffer = bytearray()
        self.skip = SKIP_HANDSHAKE

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        if self.skip:
            cut = min(self.skip, len(buf))
            del buf[:cut]
            self.skip -= cut
        offset, size, frames = 0, len(buf), []
        while size - offset >= 10:
            length = (buf[offset + 8] << 8) | buf[offset + 9]
            if length < 10 or size - offset < length:
                break
            frames.append(bytes(buf[offset : offset + length]))
            offset += length
        del buf[:offset]
        self.counter[0] += len(frames)
        if self.onward is not None and frames:
            self.onward.write(b"".join(frames))


async def serve(listen: int, forward: int | None) -> None:
    loop = asyncio.get_running_loop()
    counter = [0]
    onward = None
    if forward is not None:
        onward, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", forward)
        onward.write(bytes(SKIP_HANDSHAKE))
    server = await loop.create_server(lambda: Forwarder(onward, counter), "127.0.0.1", listen)
    print("ready", flush=True)
    async with server:
        while True:
            await asyncio.sleep(0.2)
            if forward is None:
                print(f"count {counter[0]} {time.monotonic()}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", type=int, required=True)
    parser.add_argument("--forward", type=int)
    args = parser.parse_args()
    try:
        uvloop.run(serve(args.listen, args.forward))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
