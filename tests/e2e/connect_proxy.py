"""A stand-in for the gateway's federation side: an HTTPS ``CONNECT`` proxy.

Synapse, given ``https_proxy``, tunnels each federation connection through
``CONNECT <name>:<port>`` and speaks TLS inside.  :class:`ConnectProxy` accepts
those tunnels for the names in its route table, terminates the TLS with a
certificate minted on the fly for the SNI name by :class:`LocalCA` (whose PEM the
homeservers trust through ``federation_custom_ca_list``), and then:

* on port 443 answers ``/.well-known/matrix/server`` itself, delegating
  ``<name>`` to ``<name>:8448`` (the explicit port spares Synapse its SRV look-ups),
  or with 404 when ``well_known`` is off;
* on port 8448 pipes the plain HTTP to the routed homeserver's federation listener.

It records what it sees (``CONNECT`` targets, SNI names, request lines and
``Host`` headers) so tests can assert on Synapse's behaviour.  It runs its own
event loop in a thread so synchronous tests can use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from router.gateway.ca import LocalCA as GatewayCA

_HEAD_LIMIT = 64 * 1024


class LocalCA(GatewayCA):
    """The gateway's own CA (``router.gateway.ca``), safe to share between the
    proxy's threads; ``pem_path`` is what a homeserver is told to trust."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, label="test")
        self.pem_path = self.cert_path
        self._lock = threading.Lock()

    def server_context(self, name: str) -> ssl.SSLContext:
        with self._lock:
            return super().server_context(name)


@dataclass
class Observed:
    """What a :class:`ConnectProxy` saw, in arrival order."""

    connects: list[tuple[str, int]] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)
    # (CONNECT host, CONNECT port, request line, Host header)
    requests: list[tuple[str, int, str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class ConnectProxy:
    """An HTTPS ``CONNECT`` proxy on 127.0.0.1 that routes server names to local listeners.

    ``routes`` maps a server name to the port of its homeserver's plain-HTTP
    federation listener; it may be changed while the proxy runs.  ``cert_name``
    overrides the name put in minted certificates (to test a mismatch).
    """

    def __init__(
        self,
        ca: LocalCA,
        routes: dict[str, int] | None = None,
        *,
        well_known: bool = True,
        cert_name: str | None = None,
    ) -> None:
        self.ca = ca
        self.routes: dict[str, int] = dict(routes or {})
        self.well_known = well_known
        self.cert_name = cert_name
        self.observed = Observed()
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="connect-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("CONNECT proxy did not start")

    def stop(self) -> None:
        loop, thread, stopping = self._loop, self._thread, self._stopping
        if loop is None or thread is None or stopping is None:
            return
        loop.call_soon_threadsafe(stopping.set)
        thread.join(10)
        self._loop = self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._tunnel(reader, writer)
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError, ValueError) as exc:
            self.observed.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()

    async def _tunnel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        method, target, _version = head.split("\r\n", 1)[0].split(" ", 2)
        host, _, port_text = target.rpartition(":")
        if method != "CONNECT" or not host or not port_text.isdigit():
            writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        port = int(port_text)
        self.observed.connects.append((host, port))
        if host not in self.routes:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()

        cert_name = self.cert_name or host

        def pick_certificate(sslobj: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext) -> None:
            self.observed.sni.append(server_name)
            sslobj.context = self.ca.server_context(cert_name)

        outer = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        outer.sni_callback = pick_certificate
        await writer.start_tls(outer)

        if port == 443:
            await self._serve_well_known(host, port, reader, writer)
        else:
            await self._pipe_to(host, port, self.routes[host], reader, writer)

    async def _read_request(
        self, host: str, port: int, reader: asyncio.StreamReader
    ) -> tuple[str, dict[str, str]] | None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        except asyncio.IncompleteReadError:
            return None
        line, *rest = head.rstrip("\r\n").split("\r\n")
        headers = {}
        for h in rest:
            k, _, v = h.partition(":")
            headers[k.strip().lower()] = v.strip()
        self.observed.requests.append((host, port, line, headers.get("host", "")))
        return line, headers

    async def _serve_well_known(
        self, host: str, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while (request := await self._read_request(host, port, reader)) is not None:
            line, headers = request
            length = int(headers.get("content-length", "0"))
            if length:
                await reader.readexactly(length)
            path = line.split(" ")[1] if " " in line else ""
            if self.well_known and path == "/.well-known/matrix/server":
                body = json.dumps({"m.server": f"{host}:8448"}).encode()
                status = b"200 OK"
            else:
                body, status = b'{"errcode":"M_NOT_FOUND"}', b"404 Not Found"
            writer.write(
                b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )
            await writer.drain()

    async def _pipe_to(
        self,
        host: str,
        port: int,
        local_port: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", local_port)

        async def upstream() -> None:
            # Logs each request head; bodies are forwarded as they come.
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
                    headers = {
                        k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])
                    }
                    self.observed.requests.append((host, port, lines[0], headers.get("host", "")))
                    up_writer.write(head)
                    length = int(headers.get("content-length", "0"))
                    if length:
                        up_writer.write(await reader.readexactly(length))
                    await up_writer.drain()
            except asyncio.IncompleteReadError:
                pass
            finally:
                if up_writer.can_write_eof():
                    up_writer.write_eof()

        async def downstream() -> None:
            while data := await up_reader.read(65536):
                writer.write(data)
                await writer.drain()

        try:
            await asyncio.gather(upstream(), downstream())
        finally:
            up_writer.close()
