"""This node's mailbox on each of its relays: an id and a secret, made once and
kept in a file only the node can read."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

MAILBOX_ID_BYTES = 16
SECRET_BYTES = 32


def load_mailboxes(path: Path, relays: tuple[bytes, ...]) -> dict[bytes, tuple[bytes, bytes]]:
    """Our mailbox (id, secret) on each relay in ``relays``: those in the file
    at ``path``, and new ones for relays it does not name, written back (mode 0600).
    An unreadable or malformed file is replaced, as if it were not there."""
    state: dict[str, Any] = {}
    if path.exists():
        with contextlib.suppress(ValueError, OSError):
            loaded = json.loads(path.read_text())
            if isinstance(loaded, dict):
                state = loaded
    changed = False
    out: dict[bytes, tuple[bytes, bytes]] = {}
    for relay in relays:
        entry: Any = state.get(relay.hex())
        try:
            out[relay] = (bytes.fromhex(entry["mailbox"]), bytes.fromhex(entry["secret"]))
        except (TypeError, KeyError, ValueError):
            entry = {"mailbox": os.urandom(MAILBOX_ID_BYTES).hex(), "secret": os.urandom(SECRET_BYTES).hex()}
            state[relay.hex()] = entry
            out[relay] = (bytes.fromhex(entry["mailbox"]), bytes.fromhex(entry["secret"]))
            changed = True
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(state, handle)
    return out
