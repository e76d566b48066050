"""A peering's connection on either QUIC engine, and across the two, on loopback."""

from __future__ import annotations

import asyncio
import datetime
import os
import random
import sys

import pytest

import router.quic
from router.links.tls import certificate_pem
from router.quic import qh3_engine
from router.quic.engines import (
    PeeringCredentials,
    PeeringEngine,
    QuicEngineName,
    dial,
    listen,
    peering_engine,
)
from router.quic.errors import QuicEngineError
from router.quic.peering import PeeringConnection, PeeringHandler
from router.wire.keys import Identity

ENGINES = [e.value for e in QuicEngineName]
PAIRS = [(a, b) for a in ENGINES for b in ENGINES]


def credentials(identity: Identity) -> PeeringCredentials:
    cert, key = certificate_pem(identity, datetime.datetime.now(datetime.UTC))
    return PeeringCredentials(cert, key, alpn="pinewood-test", idle_timeout=5.0)


def loop_errors() -> list[str]:
    """What the running loop reports as unhandled in callbacks, from now on."""
    errors: list[str] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: errors.append(repr(context)))
    return errors


class Echo:
    """The listener's handler: sends back what its stream brings."""

    def __init__(self, connection: PeeringConnection, stream_id: int) -> None:
        self.connection = connection
        self.stream_id = stream_id
        self.ended_with: str | None = None

    def handshake_completed(self) -> None:
        pass

    def stream_data(self, stream_id: int, data: bytes, end: bool) -> None:
        self.connection.send(stream_id, data)

    def transmitted(self) -> None:
        pass

    def ended(self, reason: str) -> None:
        self.ended_with = reason


class Collector:
    """The dialler's handler: keeps what comes back."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.arrived = asyncio.Event()
        self.wanted = 0
        self.transmits = 0
        self.ended_with: str | None = None

    def handshake_completed(self) -> None:
        pass

    def stream_data(self, stream_id: int, data: bytes, end: bool) -> None:
        self.received += data
        if len(self.received) >= self.wanted:
            self.arrived.set()

    def transmitted(self) -> None:
        self.transmits += 1

    def ended(self, reason: str) -> None:
        self.ended_with = reason


@pytest.mark.parametrize(("server_engine", "client_engine"), PAIRS)
def test_a_stream_crosses_between_any_two_engines(server_engine: str, client_engine: str) -> None:
    """Either engine dials either engine; the dialler learns the key the
    listener's certificate names; bytes cross both ways intact."""

    async def main() -> None:
        errors = loop_errors()
        server_identity = Identity.generate()
        accepted: list[Echo] = []

        def accept(connection: PeeringConnection, stream_id: int) -> PeeringHandler | None:
            accepted.append(Echo(connection, stream_id))
            return accepted[-1]

        listener = await listen(
            peering_engine(server_engine), "127.0.0.1", 0, credentials(server_identity), accept
        )
        client: PeeringConnection | None = None
        try:
            port = listener.sockname()[1]
            client = await dial(
                peering_engine(client_engine), "127.0.0.1", port, credentials(Identity.generate()), 10.0
            )
            assert client.peer_key() == bytes(server_identity.public_key)
            collector = Collector()
            client.attach(collector)
            payload = bytes(range(256)) * 1024  # 256 KiB: many packets, flow control
            collector.wanted = len(payload)
            stream_id = client.next_stream_id()
            client.send(stream_id, payload)
            await asyncio.wait_for(collector.arrived.wait(), 20.0)
            assert bytes(collector.received) == payload
            assert len(accepted) == 1 and accepted[0].stream_id == stream_id
            assert collector.transmits > 0
            # The echo is back, but the last acknowledgement may still be on its
            # way (aioquic keeps sent bytes until they are acknowledged).
            for _ in range(500):
                if client.unsent(stream_id) == 0:
                    break
                await asyncio.sleep(0.01)
            assert client.unsent(stream_id) == 0
            rtt = client.rtt_s()
            assert rtt is not None and 0 < rtt < 1.0
            client.shut()
            for _ in range(200):  # the listener hears the close
                if accepted[0].ended_with is not None:
                    break
                await asyncio.sleep(0.01)
            assert accepted[0].ended_with is not None
        finally:
            if client is not None:
                client.close_socket()
            listener.close()
        assert errors == []

    asyncio.run(main())


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("engine", ENGINES)
def test_a_dial_that_nobody_answers_times_out_and_closes_its_socket(engine: str) -> None:
    async def main() -> None:
        chosen = peering_engine(engine)
        before = open_descriptors()
        with pytest.raises(TimeoutError):
            await dial(chosen, "127.0.0.1", 9, credentials(Identity.generate()), 0.3)
        await asyncio.sleep(0)  # a transport closes its socket in the next turn
        assert open_descriptors() == before

    asyncio.run(main())


@pytest.mark.parametrize("engine", ENGINES)
def test_a_handshake_that_completes_before_anyone_waits_is_not_missed(engine: str) -> None:
    """aioquic's ``wait_connected`` misses a handshake that completed before it
    was called; on a busy machine that happens between sending the Initial and
    starting to wait.  The connection's own future, made before the Initial, sees it."""

    async def main() -> None:
        chosen = peering_engine(engine)
        server_identity = Identity.generate()
        listener = await listen(chosen, "127.0.0.1", 0, credentials(server_identity), lambda c, s: None)
        loop = asyncio.get_running_loop()
        quic = chosen.connection(
            chosen.configuration(
                *certificate_pem(Identity.generate(), datetime.datetime.now(datetime.UTC)),
                alpn="pinewood-test",
                idle_timeout=5.0,
                client=True,
            )
        )
        transport, client = await loop.create_datagram_endpoint(
            lambda: chosen.protocol(quic), local_addr=("127.0.0.1", 0)
        )
        assert isinstance(client, PeeringConnection)
        try:
            client.start(("127.0.0.1", listener.sockname()[1]))
            for _ in range(500):  # let the handshake finish with nobody waiting
                await asyncio.sleep(0.01)
                if client.handshake.done():
                    break
            assert client.handshake.done()  # completed while nobody waited
            await asyncio.wait_for(asyncio.shield(client.handshake), 1.0)
            assert client.peer_key() == bytes(server_identity.public_key)
        finally:
            client.shut()
            transport.close()
            listener.close()

    asyncio.run(main())


@pytest.mark.parametrize("engine", ENGINES)
def test_a_connection_that_ends_before_its_handshake_fails_the_dial_at_once(engine: str) -> None:
    async def main() -> None:
        chosen = peering_engine(engine)
        loop = asyncio.get_running_loop()
        quic = chosen.connection(
            chosen.configuration(
                *certificate_pem(Identity.generate(), datetime.datetime.now(datetime.UTC)),
                alpn="pinewood-test",
                idle_timeout=5.0,
                client=True,
            )
        )
        transport, client = await loop.create_datagram_endpoint(
            lambda: chosen.protocol(quic), local_addr=("127.0.0.1", 0)
        )
        assert isinstance(client, PeeringConnection)
        try:
            client.start(("127.0.0.1", 9))  # nobody answers
            client.ended("closed")
            done, _ = await asyncio.wait([client.handshake], timeout=1.0)
            assert done and isinstance(client.handshake.exception(), ConnectionError)
        finally:
            transport.close()

    asyncio.run(main())


def test_an_unknown_engine_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(QuicEngineError, match="unknown QUIC engine 'quiche'; known: aioquic, qh3"):
        peering_engine("quiche")


def test_a_missing_engine_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # As if qh3 were not installed: the engine module is imported afresh and fails.
    monkeypatch.delattr(router.quic, "qh3_engine", raising=False)
    monkeypatch.delitem(sys.modules, "router.quic.qh3_engine", raising=False)
    for name in [m for m in sys.modules if m == "qh3" or m.startswith("qh3.")] or ["qh3"]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(QuicEngineError, match=r'pip install qh3\) or set quic_engine = "aioquic"'):
        peering_engine("qh3")


@pytest.mark.parametrize("engine", ENGINES)
def test_each_engine_names_itself_and_its_release(engine: str) -> None:
    chosen: PeeringEngine = peering_engine(engine)
    assert chosen.name.value == engine
    assert chosen.version[0].isdigit()


def test_the_installed_qh3_has_everything_its_engine_relies_on() -> None:
    qh3_engine.check_qh3()
    assert len(qh3_engine.REQUIREMENTS) >= 5


def test_a_qh3_without_a_hook_fails_the_check_naming_its_release(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(qh3_engine.QuicConnection, "get_send_buffer_size")
    with pytest.raises(QuicEngineError, match=r"qh3 \d[^ ]* does not have .*get_send_buffer_size"):
        peering_engine("qh3")


@pytest.mark.parametrize("engine", ENGINES)
def test_an_engine_that_fails_ends_the_peering_and_the_listener_forgets_it(
    engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error the engine raises while driving a connection (qh3's native core
    raises so) ends that connection with the reason, never the loop, and the
    listener drops it though the engine will never report its end."""

    async def main() -> None:
        errors = loop_errors()
        chosen = peering_engine(engine)
        accepted: list[Echo] = []

        def accept(connection: PeeringConnection, stream_id: int) -> PeeringHandler | None:
            accepted.append(Echo(connection, stream_id))
            return accepted[-1]

        listener = await listen(chosen, "127.0.0.1", 0, credentials(Identity.generate()), accept)
        try:
            client = await dial(
                chosen, "127.0.0.1", listener.sockname()[1], credentials(Identity.generate()), 10.0
            )
            collector = Collector()
            collector.wanted = 5
            client.attach(collector)
            client.send(client.next_stream_id(), b"hello")
            await asyncio.wait_for(collector.arrived.wait(), 10.0)
            server = accepted[0].connection
            server_count = len(set(listener._server._protocols.values()))
            assert server_count == 1

            class CoreFailure(Exception):
                pass

            def broken(now: float) -> list[tuple[bytes, object]]:
                raise CoreFailure("packet builder capacity exhausted")

            monkeypatch.setattr(type(server), "engine_errors", (CoreFailure,))
            monkeypatch.setattr(server, "datagrams_to_send", broken)
            server.send(accepted[0].stream_id, b"more")
            for _ in range(100):
                if accepted[0].ended_with is not None:
                    break
                await asyncio.sleep(0.01)
            assert accepted[0].ended_with == "QUIC engine error: packet builder capacity exhausted"
            assert server not in listener._server._protocols.values()
            client.shut()
            client.close_socket()
        finally:
            listener.close()
        assert errors == []

    asyncio.run(main())


class FailingCore:
    """A stand-in for qh3's native core that fails to build, or builds ``ready``."""

    def __init__(self) -> None:
        self.ready: list[tuple[bytes, tuple[str, int]]] = []
        self.failing = True

    def poll_transmit(self, now: float) -> tuple[bytes, tuple[str, int]] | None:
        if self.ready:
            return self.ready.pop(0)
        if self.failing:
            raise RuntimeError("packet builder capacity exhausted")
        return None


def test_a_qh3_core_that_keeps_failing_to_build_is_broken_after_a_second() -> None:
    """qh3's core fails to build its first flight to an aioquic client for a
    timer round or two; what it built before failing is sent, and only a core
    that has built nothing for MAX_BUILD_FAILURE_S counts as broken."""

    async def main() -> None:
        quic = qh3_engine.client_connection(qh3_engine.QuicConfiguration(is_client=True))
        core = FailingCore()
        quic._core = core  # type: ignore[assignment]
        peering = qh3_engine.Qh3Peering(quic)
        core.ready = [(b"built", ("127.0.0.1", 9))]
        assert peering.datagrams_to_send(10.0) == [(b"built", ("127.0.0.1", 9))]
        assert peering.datagrams_to_send(10.0) == []  # failing since 10.0
        assert peering.datagrams_to_send(10.9) == []
        core.failing = False
        assert peering.datagrams_to_send(11.0) == []  # nothing to send is not a failure
        core.failing = True
        assert peering.datagrams_to_send(11.5) == []  # failing since 11.5
        with pytest.raises(qh3_engine.QuicConnectionError, match=r"has failed for 1\.0 s"):
            peering.datagrams_to_send(11.5 + qh3_engine.MAX_BUILD_FAILURE_S)

    asyncio.run(main())


def garbage_datagrams(dcids: list[bytes]) -> list[bytes]:
    """Datagrams no QUIC stack made: random bytes of every size class, Initials
    padded to 1200 bytes with random contents, long headers of unknown
    versions, and short-header packets addressed to the listener's own
    connection IDs with random (undecryptable) contents."""
    rng = random.Random(7)

    def noise(n: int) -> bytes:
        return rng.randbytes(n)

    out = [b"", b"\x00", b"\xc0", noise(5), noise(40), noise(1200), noise(1500)]
    for version in (b"\x00\x00\x00\x01", b"\x6b\x33\x43\xcf", b"\xfa\xce\xb0\x0c", b"\x00\x00\x00\x00"):
        out.append(b"\xc3" + version + b"\x08" + noise(8) + b"\x08" + noise(8) + noise(1180))
        out.append(b"\xc3" + version + b"\xff" + noise(40))  # a connection ID longer than any
    for dcid in dcids:
        out.append(bytes([0x40 | rng.randrange(64)]) + dcid + noise(60))
        out.append(bytes([0x40]) + dcid)  # no packet number, no payload
        out.append(bytes([0x40]) + dcid + noise(1400))
    return out


@pytest.mark.parametrize("engine", ENGINES)
def test_garbage_datagrams_are_shrugged_off_and_the_peering_carries_on(engine: str) -> None:
    """Untrusted datagrams at a listener, some aimed at a live connection, and
    at a dialler's socket: no error escapes into the loop, and the live peering
    still carries bytes."""

    async def main() -> None:
        errors = loop_errors()
        chosen = peering_engine(engine)
        accepted: list[Echo] = []

        def accept(connection: PeeringConnection, stream_id: int) -> PeeringHandler | None:
            accepted.append(Echo(connection, stream_id))
            return accepted[-1]

        listener = await listen(chosen, "127.0.0.1", 0, credentials(Identity.generate()), accept)
        port = listener.sockname()[1]
        try:
            client = await dial(chosen, "127.0.0.1", port, credentials(Identity.generate()), 10.0)
            collector = Collector()
            client.attach(collector)
            stream_id = client.next_stream_id()
            collector.wanted = 5
            client.send(stream_id, b"first")
            await asyncio.wait_for(collector.arrived.wait(), 10.0)
            dcids = [cid for cid in listener._server._protocols if isinstance(cid, bytes)]
            assert client.udp is not None
            dialler = client.udp.get_extra_info("sockname")[:2]
            loop = asyncio.get_running_loop()
            raw, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
            )
            for datagram in garbage_datagrams(dcids) * 3:
                raw.sendto(datagram, ("127.0.0.1", port))
                raw.sendto(datagram, dialler)  # the dialler's own socket too
            await asyncio.sleep(0.2)
            raw.close()
            collector.arrived.clear()
            collector.wanted = 5 + 6
            client.send(stream_id, b"second")
            await asyncio.wait_for(collector.arrived.wait(), 10.0)
            assert bytes(collector.received) == b"firstsecond"
            assert accepted[0].ended_with is None
            client.shut()
            client.close_socket()
        finally:
            listener.close()
        assert errors == []

    asyncio.run(main())
