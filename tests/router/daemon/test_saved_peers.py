"""The peers saved in the data directory: written whole, read as untrusted input."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from router.daemon.saved_peers import MAX_FILE_BYTES, SavedPeers


def test_saved_peers_round_trip_with_private_mode(tmp_path: Path) -> None:
    saved = SavedPeers(tmp_path / "data")
    assert saved.load() == []
    saved.add("tcp://192.0.2.1:65432")
    saved.add("tcp://192.0.2.1:65432")  # once only
    saved.add("quic://192.0.2.2:65432")
    assert stat.S_IMODE(saved.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(saved.path.parent.stat().st_mode) == 0o700
    again = SavedPeers(tmp_path / "data")
    assert again.load() == ["tcp://192.0.2.1:65432", "quic://192.0.2.2:65432"]
    assert again.remove("tcp://192.0.2.1:65432") and not again.remove("tcp://192.0.2.1:65432")
    assert SavedPeers(tmp_path / "data").load() == ["quic://192.0.2.2:65432"]
    assert not list(saved.path.parent.glob("*.new"))  # nothing half-written left behind


def test_bad_entries_are_skipped_and_the_rest_kept(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    path.write_text(json.dumps({"peers": ["tcp://192.0.2.1:1", "gopher://x", 7, "tcp://192.0.2.1:1"]}))
    saved = SavedPeers(tmp_path)
    assert saved.load() == ["tcp://192.0.2.1:1"]
    saved.add("tcp://192.0.2.3:3")  # rewritten without the bad entries
    assert json.loads(path.read_text()) == {"peers": ["tcp://192.0.2.1:1", "tcp://192.0.2.3:3"]}


def test_a_file_that_is_not_the_list_is_set_aside(tmp_path: Path) -> None:
    for content in (
        b"not json",
        b"[1, 2]",
        b'{"peers": "tcp://x:1"}',
        b"\xff\xfe",
        b" " * (MAX_FILE_BYTES + 1),
    ):
        path = tmp_path / "peers.json"
        path.write_bytes(content)
        assert SavedPeers(tmp_path).load() == []
        assert not path.exists() and (tmp_path / "peers.json.bad").read_bytes() == content


def test_a_file_that_cannot_be_read_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    path.mkdir()  # reading it fails (a directory), as a file of another owner would
    saved = SavedPeers(tmp_path)
    assert saved.load() == []
    with pytest.raises(OSError, match="could not be read at start"):
        saved.add("tcp://192.0.2.1:1")
    assert path.is_dir()
