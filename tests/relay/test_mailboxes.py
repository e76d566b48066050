"""The mailbox secrets file: made once, kept, private, and replaced if unreadable."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from relay.mailboxes import load_mailboxes

R1, R2 = b"\x01" * 32, b"\x02" * 32


def test_made_once_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "relay" / "mailboxes.json"
    first = load_mailboxes(path, (R1,))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_mailboxes(path, (R1,)) == first
    both = load_mailboxes(path, (R1, R2))  # a relay added: the old mailbox stays
    assert both[R1] == first[R1] and both[R2] != first[R1]
    assert len(both[R2][0]) == 16 and len(both[R2][1]) == 32


def test_a_malformed_file_or_entry_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "mailboxes.json"
    for text in ["not json", "[1, 2]", json.dumps({R1.hex(): {"mailbox": "zz", "secret": 5}})]:
        path.write_text(text)
        made = load_mailboxes(path, (R1,))
        assert load_mailboxes(path, (R1,)) == made
