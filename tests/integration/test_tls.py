"""TLS peerings between real daemons, key pinning over TLS, and the inbound allow-list."""

from __future__ import annotations

import socket
import ssl

from bench.daemons import DaemonNet, wait_until
from router.links.tls import peer_certificate_key


def test_tls_network_converges_and_pings(net: DaemonNet) -> None:
    net.start(["a", "b", "c"], [("b", "a"), ("c", "b")], scheme="tls")
    net.wait_converged()
    net.ping_all_pairs()
    b = net.daemons["b"]
    assert {p["link_type"] for p in b.api("GET", "/peers") if "port" in p} == {"tls"}
    assert 'link_type="tls"' in b.api("GET", "/metrics")


def test_tls_certificate_names_the_node_key(net: DaemonNet) -> None:
    net.start(["a"], [], scheme="tls")
    a = net.daemons["a"]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", a.port)) as raw, context.wrap_socket(raw) as tls:
        assert tls.version() == "TLSv1.3"
        assert peer_certificate_key(tls) == bytes.fromhex(a.key)


def test_pinned_key_mismatch_over_tls_is_refused(net: DaemonNet) -> None:
    net.start(["a", "b"], [], scheme="tls")
    a, b = net.daemons["a"], net.daemons["b"]
    a.api("POST", "/peers", {"uri": f"{b.uri}?key={'11' * 32}"})
    wait_until(
        lambda: a.api("GET", "/status")["counters"].get("handshakes refused: pinned key mismatch", 0) >= 1,
        10,
        "the pinned key mismatch refused",
    )
    assert a.api("GET", "/status")["peers"] == 0
    a.api("DELETE", f"/peers?uri={b.uri}%3Fkey%3D{'11' * 32}")
    a.api("POST", "/peers", {"uri": f"{b.uri}?key={b.key}"})
    net.wait_converged(timeout=30)


def test_allow_list_refuses_other_keys(net: DaemonNet) -> None:
    net.start(["b", "c"], [])
    b, c = net.daemons["b"], net.daemons["c"]
    net.start(["a"], [], extra=[f"--allow-keys={b.key}"])
    a = net.daemons["a"]
    for dialler in (b, c):
        dialler.api("POST", "/peers", {"uri": a.uri})
    wait_until(
        lambda: (
            a.api("GET", "/status")["counters"].get("handshakes refused: key not in allow_keys", 0) >= 1
            and a.api("GET", "/status")["peers"] >= 1
        ),
        10,
        "b peered and c refused",
    )
    connected = {p["key"] for p in a.api("GET", "/peers") if "port" in p}
    assert connected == {b.key}
