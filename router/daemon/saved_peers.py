"""The peers an operator added at run time, kept across restarts.

``pinewood peer add`` saves the peer's URI in ``data_dir/peers.json`` (a JSON
object ``{"peers": [...]}``, mode 0600, replaced whole on every change so a
crash leaves the old list or the new one, never half of either); the node
dials them again at start, beside the ``peers`` of its configuration.  The
file is the node's own, but it is read as untrusted input: an entry that is not
a peer URI is skipped with a warning, and a file that is not that JSON object
is set aside (renamed ``peers.json.bad``) rather than stopping the node.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from router.links.uri import URIError, parse_peer_uri
from router.logs import get_logger

FILE_NAME = "peers.json"
MAX_FILE_BYTES = 1 << 20
"""A larger file is not read: no operator adds this many peers by hand."""

log = get_logger("pinewood")


class SavedPeers:
    """The saved peer URIs, in the order they were added."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FILE_NAME
        self._uris: list[str] = []
        self._unreadable = ""
        """Why the file could not be read at start, if it could not."""

    def load(self) -> list[str]:
        """Read the file (if there is one) and return the URIs to dial."""
        try:
            with self.path.open("rb") as handle:
                raw = handle.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            return []
        except OSError as exc:
            # Not overwritten later with a list that lost them: changes are refused.
            self._unreadable = exc.strerror or str(exc)
            log.warning("saved peers unreadable", path=str(self.path), error=self._unreadable)
            return []
        try:
            if len(raw) > MAX_FILE_BYTES:
                raise ValueError(f"over {MAX_FILE_BYTES} bytes")
            document = json.loads(raw)
            entries = document["peers"] if isinstance(document, dict) else None
            if not isinstance(entries, list):
                raise ValueError('not a JSON object {"peers": [...]}')
        except (ValueError, KeyError, UnicodeDecodeError, RecursionError) as exc:
            aside = self.path.with_name(FILE_NAME + ".bad")
            with contextlib.suppress(OSError):
                os.replace(self.path, aside)
            log.warning("saved peers set aside", path=str(aside), error=str(exc)[:200])
            return []
        for entry in entries:
            try:
                uri = str(parse_peer_uri(entry)) if isinstance(entry, str) else None
            except URIError as exc:
                log.warning("saved peer skipped", entry=entry[:200], error=str(exc))
                continue
            if uri is None:
                log.warning("saved peer skipped", entry=repr(entry)[:200], error="not a string")
            elif uri not in self._uris:
                self._uris.append(uri)
        return list(self._uris)

    def add(self, uri: str) -> None:
        """Save ``uri`` (canonical form) unless it is saved already. Raises OSError."""
        if uri not in self._uris:
            self._write([*self._uris, uri])

    def remove(self, uri: str) -> bool:
        """Forget ``uri``; whether it was saved. Raises OSError."""
        if uri not in self._uris:
            return False
        self._write([u for u in self._uris if u != uri])
        return True

    def _write(self, uris: list[str]) -> None:
        if self._unreadable:
            raise OSError(f"{self.path} could not be read at start ({self._unreadable}); fix it and restart")
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = self.path.with_name(FILE_NAME + ".new")
        data = (json.dumps({"peers": uris}, indent=1) + "\n").encode()
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)
        self._uris = uris
