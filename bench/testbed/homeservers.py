"""Homeservers inside testbed namespaces, and what a measurement needs around them.

- :class:`NamespacedSynapse`: a Synapse of the end-to-end harness
  (:class:`tests.e2e.synapse.Homeserver`) whose process runs in a testbed
  node's namespace (``ip netns exec``), listening on that namespace's loopback.
  Its client API is reached from here through a :class:`Forwarder`: a port on
  this namespace's loopback whose upstream sockets are made inside the node's
  namespace (:func:`bench.testbed.netns.connect_in`), so the harness's Matrix
  client works unchanged.
- :class:`LineBed`: a :class:`~bench.testbed.bed.Testbed` whose nodes may each
  get arguments of their own (a gateway on some nodes only).
- :class:`SyncWatcher`: a client that always has a ``/sync`` long-poll open on
  one room and notes when each message body arrived.
- :func:`stored_at`: when Synapse persisted events, from its own database.
- :func:`make_certificates` and :func:`hosts_files`: for homeservers that
  federate directly, a CA of the run and name resolution by
  ``/etc/netns/<namespace>/hosts`` (which ``ip netns exec`` mounts over
  ``/etc/hosts``).
"""

from __future__ import annotations

import contextlib
import datetime
import http.client
import json
import shutil
import socket
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench.testbed import netns
from bench.testbed.bed import Testbed
from tests.e2e.client import MatrixClient
from tests.e2e.synapse import Homeserver

NETNS_ETC = Path("/etc/netns")


class Forwarder:
    """A TCP port on this namespace's loopback that leads to ``port`` on a namespace's loopback."""

    def __init__(self, namespace: str, port: int) -> None:
        self.namespace = namespace
        self.target = port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name=f"forward-{port}", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = netns.connect_in(self.namespace, ("127.0.0.1", self.target), 5.0)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._open.update((client, upstream))
        back = threading.Thread(target=self._pump, args=(upstream, client), daemon=True)
        back.start()
        self._pump(client, upstream)
        back.join()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.difference_update((source, sink))
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self._open.clear()


class NamespacedSynapse(Homeserver):
    """A :class:`Homeserver` whose process runs in a testbed namespace, its client API forwarded here."""

    def __init__(self, namespace: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.namespace = namespace
        self.forwarder: Forwarder | None = None

    @property
    def client_url(self) -> str:
        assert self.forwarder is not None
        return f"http://127.0.0.1:{self.forwarder.port}"

    @property
    def database(self) -> Path:
        return self.data_dir / "homeserver.db"

    def command(self) -> list[str]:
        return ["ip", "netns", "exec", self.namespace, *super().command()]

    def start(self, timeout: float = 180.0) -> None:
        self.forwarder = Forwarder(self.namespace, self.client_port)
        try:
            super().start(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 15.0) -> None:
        super().stop(timeout)
        if self.forwarder is not None:
            self.forwarder.close()


@dataclass
class LineBed(Testbed):
    """A :class:`Testbed` whose nodes may each get arguments of their own."""

    node_args: Mapping[int, Sequence[str]] = field(default_factory=dict)

    def launch(self, index: int) -> None:
        common = self.pinewood_args
        self.pinewood_args = (*common, *self.node_args.get(index, ()))
        try:
            super().launch(index)
        finally:
            self.pinewood_args = common


class SyncWatcher:
    """B's client, always in a ``/sync`` long-poll on one room: when each message body arrived."""

    def __init__(self, client: MatrixClient, room: str) -> None:
        self.client = client
        self.room = room
        self.arrived: dict[str, float] = {}
        self.errors = 0
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._conn: http.client.HTTPConnection | None = None
        self._filter = json.dumps(
            {
                "room": {
                    "rooms": [room],
                    "timeline": {"limit": 200, "types": ["m.room.message"]},
                    "state": {"lazy_load_members": True, "types": []},
                    "ephemeral": {"types": []},
                    "account_data": {"types": []},
                },
                "presence": {"types": []},
                "account_data": {"types": []},
            }
        )
        self._since = str(self._sync(0)["next_batch"])
        self._thread = threading.Thread(target=self._run, name="sync", daemon=True)
        self._thread.start()

    def _sync(self, timeout_ms: int) -> dict[str, Any]:
        if self._conn is None:
            host, port = self.client.base_url.removeprefix("http://").split(":")
            self._conn = http.client.HTTPConnection(host, int(port), timeout=timeout_ms / 1000 + 30)
        query = f"timeout={timeout_ms}&filter={_quote(self._filter)}"
        if timeout_ms:
            query += f"&since={_quote(self._since)}"
        headers = {"Authorization": f"Bearer {self.client.access_token}"}
        try:
            self._conn.request("GET", f"/_matrix/client/v3/sync?{query}", headers=headers)
            response = self._conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException):
            self._conn.close()
            self._conn = None
            raise
        if response.status != 200:
            raise http.client.HTTPException(f"/sync: {response.status} {raw[:200]!r}")
        answer: dict[str, Any] = json.loads(raw)
        return answer

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                answer = self._sync(10_000)
            except (OSError, ValueError, http.client.HTTPException):
                self.errors += 1
                self._stop.wait(0.1)
                continue
            now = time.monotonic()
            self._since = str(answer["next_batch"])
            timeline = answer.get("rooms", {}).get("join", {}).get(self.room, {}).get("timeline", {})
            with self._changed:
                for event in timeline.get("events", []):
                    body = event.get("content", {}).get("body")
                    if isinstance(body, str):
                        self.arrived.setdefault(body, now)
                self._changed.notify_all()

    def wait_for(self, bodies: Sequence[str], deadline: float) -> bool:
        """Wait until every one of ``bodies`` arrived or ``deadline`` (monotonic) passed."""
        with self._changed:
            while not all(b in self.arrived for b in bodies):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 1.0))
        return True

    def close(self) -> None:
        self._stop.set()
        conn = self._conn
        if conn is not None and conn.sock is not None:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=15)


def _quote(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def stored_at(database: Path, event_ids: Sequence[str]) -> dict[str, float]:
    """When Synapse stored each event (``events.received_ts``), in wall-clock seconds."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)) as db:
        rows = db.execute(
            f"SELECT event_id, received_ts FROM events WHERE event_id IN ({','.join('?' * len(event_ids))})",
            list(event_ids),
        ).fetchall()
    return {str(e): int(ts) / 1000 for e, ts in rows if ts is not None}


def make_certificates(directory: Path, names: Sequence[str]) -> Path:
    """A CA and a certificate for each of ``names`` (``<name>.pem``, ``<name>.key``); the CA's path."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "federation testbed CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = directory / "ca.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for name in names:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        (directory / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (directory / f"{name}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return ca_path


@contextlib.contextmanager
def hosts_files(namespaces: Sequence[str], entries: Mapping[str, str]) -> Iterator[None]:
    """``/etc/netns/<namespace>/hosts`` for each namespace, removed afterwards."""
    text = "127.0.0.1 localhost\n" + "".join(f"{address} {name}\n" for name, address in entries.items())
    made = []
    try:
        for name in namespaces:
            directory = NETNS_ETC / name
            directory.mkdir(parents=True, exist_ok=False)
            made.append(directory)
            (directory / "hosts").write_text(text)
        yield
    finally:
        for directory in made:
            shutil.rmtree(directory, ignore_errors=True)


def remove_stale_hosts() -> None:
    """Hosts directories of testbed namespaces that are gone (a run killed outright)."""
    if NETNS_ETC.exists():
        for directory in NETNS_ETC.glob(f"{netns.PREFIX}*"):
            if not (netns.NETNS_DIR / directory.name).exists():
                shutil.rmtree(directory, ignore_errors=True)
