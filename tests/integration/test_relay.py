"""Store-and-forward through real processes: a node away, its mail kept sealed, delivered once.

Nodes (all real ``pinewood run`` processes, peered through a hub h):

* a: the sender's router, with the federation proxy; its own relay is i;
* i: a relay, the intermediate hop for a's deposits;
* r: a relay, where b keeps its mailbox;
* b: the recipient's router, in front of a fake homeserver that records what
  it receives.

b registers its mailbox on r and publishes its record, then stops.  100
federation transactions sent to b through a's proxy are left on r (via i);
the relays' databases are checked for what they must not hold; b starts again
and its homeserver receives every transaction once, in order.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import signal
import sqlite3
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import asyncpg
import pytest

from bench.daemons import Daemon, DaemonNet, free_port, wait_until
from bench.postgres import postgres_dump, postgres_url
from relay.envelope import BUCKETS
from router.matrix.names import server_name


class Recorder(BaseHTTPRequestHandler):
    """A homeserver's federation listener that writes down every request."""

    protocol_version = "HTTP/1.1"
    received: ClassVar[list[tuple[str, str, bytes]]] = []
    lock: ClassVar[threading.Lock] = threading.Lock()

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with self.lock:
            self.received.append((self.command, self.path, body))
        reply = b"{}"
        self.send_response(200)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: object) -> None:
        pass


def relay_info(daemon: Daemon) -> dict[str, Any]:
    info: dict[str, Any] = daemon.api("GET", "/relay")
    return info


def stored_sizes_and_bytes(daemon: Daemon, url: str) -> tuple[set[int], bytes]:
    """The envelope sizes a relay's store holds, and everything it would show a thief:
    the database files for SQLite, a dump for PostgreSQL."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite://"))
        with sqlite3.connect(path) as db:
            sizes = {size for (size,) in db.execute("SELECT length(body) FROM envelopes")}
        return sizes, b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))

    async def query() -> set[int]:
        connection = await asyncpg.connect(url)
        try:
            return {row[0] for row in await connection.fetch("SELECT length(body) FROM envelopes")}
        finally:
            await connection.close()

    return asyncio.run(query()), postgres_dump(url)


def absent(secret: bytes, blob: bytes) -> bool:
    """Neither the bytes nor their hex (as a dump shows bytea) are in ``blob``."""
    return secret not in blob and secret.hex().encode() not in blob


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_transactions_for_an_away_node_are_relayed_and_delivered_once(backend: str, tmp_path: Path) -> None:
    Recorder.received = []
    homeserver = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    homeserver.daemon_threads = True
    threading.Thread(target=homeserver.serve_forever, daemon=True).start()
    net = DaemonNet(tmp_path)
    proxy = free_port()
    try:
        net.start(["h"], [])
        stores = {
            name: f"sqlite:///{tmp_path / f'{name}-store.db'}"
            if backend == "sqlite"
            else postgres_url(f"relay{name}{tmp_path.name}")
            for name in ("i", "r")
        }
        for name in ("i", "r"):
            net.start([name], [(name, "h")], extra=["--relay-enable", f"--relay-store={stores[name]}"])
        keys = {name: net.daemons[name].key for name in ("i", "r")}
        net.start(
            ["a"],
            [("a", "h")],
            extra=[f"--gateway-listen=127.0.0.1:{proxy}", "--session-timeout=2", f"--relays={keys['i']}"],
        )
        b_args = [
            f"--homeserver=http://127.0.0.1:{homeserver.server_address[1]}",
            f"--relays={keys['r']}",
            "--relay-fetch-interval=1",
        ]
        net.start(["b"], [("b", "h")], extra=b_args)
        net.wait_converged()
        b = net.daemons["b"]
        wait_until(lambda: relay_info(b)["record_published"], 30, "b's mailbox and record")
        # A record published before the network settled may sit on the wrong
        # node; b republishes often while it is new.  Wait for one after.
        published = relay_info(b)["client_counters"]["records published"]
        wait_until(
            lambda: relay_info(b)["client_counters"]["records published"] > published,
            30,
            "b to publish its record into the settled network",
        )
        state = json.loads((b.data_dir / "relay" / "mailboxes.json").read_text())
        mailbox = bytes.fromhex(state[keys["r"]]["mailbox"])

        net.kill("b", signal.SIGTERM)
        net.wait_converged()
        a = net.daemons["a"]

        def found() -> bool:
            # As a sender finds it: asked of key space, not from a's own cache.
            answer = a.api("POST", "/relay/lookup", {"key": b.key, "fresh": True}, timeout=10)
            return answer["record"] is not None and answer["record"]["relays"][0]["relay"] == keys["r"]

        wait_until(found, 30, "b's record to be found in key space while b is away")

        # a's homeserver (played by this test) sends 100 transactions to b.
        name = server_name(bytes.fromhex(b.key))
        context = ssl.create_default_context(cafile=str(a.data_dir / "gateway" / "gateway-ca.pem"))
        conn = http.client.HTTPSConnection("127.0.0.1", proxy, timeout=60, context=context)
        conn.set_tunnel(name, 8448)
        marker = b"secret-payload-marker"
        for n in range(100):
            body = json.dumps({"origin": "a", "n": n, "note": marker.decode()}).encode()
            origin = f'X-Matrix origin="{server_name(bytes.fromhex(a.key))}",key="ed25519:a",sig="c2ln"'
            conn.request(
                "PUT", f"/_matrix/federation/v1/send/txn{n}", body=body, headers={"Authorization": origin}
            )
            response = conn.getresponse()
            assert response.status == 200, (response.status, response.read())
            response.read()
        conn.close()

        # What the relays hold while b is away.
        r, i = net.daemons["r"], net.daemons["i"]
        assert relay_info(r)["store"]["envelopes"] == 100
        assert relay_info(i)["store"]["envelopes"] == 0
        sizes, r_files = stored_sizes_and_bytes(r, stores["r"])
        _, i_files = stored_sizes_and_bytes(i, stores["i"])
        assert mailbox in r_files or mailbox.hex().encode() in r_files  # the check can see what is there
        for blob in (r_files, i_files):
            assert absent(bytes.fromhex(a.key), blob)  # no sender key
            assert absent(marker, blob)  # no payload
        assert absent(mailbox, i_files)  # the intermediate never learned the mailbox
        assert sizes and sizes <= set(BUCKETS)
        assert Recorder.received == []

        # b comes back: every transaction arrives once, in order.
        net.launch(b, [*b_args, f"--peer={net.daemons['h'].uri}"])
        net.wait_up(b)
        wait_until(lambda: len(Recorder.received) >= 100, 60, "100 transactions at b's homeserver")
        time.sleep(2)  # anything extra would arrive with the next fetches
        paths = [path for _, path, _ in Recorder.received]
        assert paths == [f"/_matrix/federation/v1/send/txn{n}" for n in range(100)]
        assert [json.loads(body)["n"] for _, _, body in Recorder.received] == list(range(100))
        wait_until(lambda: relay_info(r)["store"]["envelopes"] == 0, 30, "r to forget delivered envelopes")
    finally:
        net.stop_all()
        homeserver.shutdown()
        homeserver.server_close()
