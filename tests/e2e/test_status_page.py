"""The status page at the admin API's ``/``, served by a real node and drawn by
headless Chromium: its script reads the JSON routes and shows the node's peers.

The screenshot is kept in ``$PINEWOOD_TEST_ARTIFACTS`` (default
``test-artifacts/`` in the checkout) for a person to look at.
"""

from __future__ import annotations

import os
import subprocess
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest

from bench.daemons import Daemon, DaemonNet, wait_until
from router.daemon.admin.page import CONTENT_TYPE, page_bytes
from tests.conftest import REPO_ROOT

CHROMIUM = Path("/usr/bin/chromium")
REQUIRE_ENV = "PINEWOOD_REQUIRE_INTEROP"
"""Set to 1 (as CI does) to fail, not skip, where Chromium is not installed."""
ARTIFACTS_ENV = "PINEWOOD_TEST_ARTIFACTS"
VIRTUAL_TIME_MS = 5000
"""Virtual time the page runs for before it is read: two rounds of its 2 s refresh."""
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chromium_or_skip() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    reason = f"{CHROMIUM} is not installed (Debian's package chromium)"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} (and ${REQUIRE_ENV}=1 forbids skipping)")
    pytest.skip(reason)


def headless(profile: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """One run of headless Chromium with a profile of its own and nothing fetched from outside."""
    profile.mkdir(parents=True)
    command = [
        str(chromium_or_skip()),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--virtual-time-budget={VIRTUAL_TIME_MS}",
        *args,
    ]
    result = subprocess.run(command, capture_output=True, timeout=180, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-3000:]
    return result


class TextOf(HTMLParser):
    """The text nodes of a document and the values of its title attributes."""

    def __init__(self, document: str) -> None:
        super().__init__()
        self.texts: list[str] = []
        self.titles: list[str] = []
        self.feed(document)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.titles += [value for name, value in attrs if name == "title" and value]

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.texts.append(data.strip())


def fetch(daemon: Daemon, path: str, method: str = "GET") -> tuple[dict[str, str], bytes]:
    request = urllib.request.Request(f"http://{daemon.admin}{path}", method=method)
    with urllib.request.urlopen(request, timeout=5) as response:
        return dict(response.headers.items()), response.read()


def artifacts_dir() -> Path:
    path = Path(os.environ.get(ARTIFACTS_ENV) or REPO_ROOT / "test-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def three_nodes(net: DaemonNet) -> Daemon:
    """a - b - c, the middle one peered over TCP with a and over WebSocket with c; b is returned."""
    net.start(["a"], [])
    net.start(["b"], [("b", "a")], scheme="ws")
    net.start(["c"], [("c", "b")])
    net.wait_converged()
    b = net.daemons["b"]
    wait_until(lambda: len([p for p in b.api("GET", "/peers") if "port" in p]) == 2, 20, "b has two peers")
    return b


def test_the_page_is_served_with_its_headers(net: DaemonNet) -> None:
    net.start(["a"], [])
    a = net.daemons["a"]
    headers, body = fetch(a, "/")
    assert headers["Content-Type"] == CONTENT_TYPE == "text/html; charset=utf-8"
    policy = headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert body == page_bytes() and body.startswith(b"<!doctype html>")
    head_headers, head_body = fetch(a, "/", "HEAD")
    assert head_body == b"" and head_headers["Content-Length"] == str(len(body))


def test_chromium_draws_the_peers_of_a_node(net: DaemonNet, tmp_path: Path) -> None:
    chromium_or_skip()
    b = three_nodes(net)
    peers = [net.daemons["a"], net.daemons["c"]]
    url = f"http://{b.admin}/"

    _, static = fetch(b, "/")
    for peer in peers:
        assert peer.key[:16].encode() not in static  # whatever shows them, the script wrote

    dom = headless(tmp_path / "profile-dom", "--dump-dom", url).stdout.decode()
    seen = TextOf(dom)
    for peer in peers:
        assert peer.key[:16] in seen.texts, (peer.name, seen.texts)  # as the peers table shows them
        assert peer.key in seen.titles  # the whole key, on hover
    assert b.key in seen.texts  # the node card's key
    assert {"tcp", "ws"} <= set(seen.texts)  # the link types, in the table and on the picture
    assert "Not available from the node." not in seen.texts

    shot = artifacts_dir() / "status-page.png"
    shot.unlink(missing_ok=True)
    headless(tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1280,900", url)
    data = shot.read_bytes()
    assert len(data) > len(PNG_SIGNATURE) and data.startswith(PNG_SIGNATURE)
