"""Where a node's identity lives: a private key file, or a seed from the environment.

The file holds the 32-byte ed25519 seed as 64 hex characters and a newline.  It
is created with mode 0600 on first use, and a file that others can read is
refused rather than used: a leaked seed is a stolen address.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from router.daemon.errors import DaemonError
from router.wire.keys import SEED_SIZE, Identity

SEED_ENV = "PINEWOOD_SEED"
"""Hex seed for containers and tests; takes precedence over the key file."""


class KeyFileError(DaemonError):
    """The identity could not be loaded or created; the message says why."""


def default_data_dir() -> Path:
    """``$PINEWOOD_DATA_DIR``, else ``$XDG_DATA_HOME/pinewood``, else ``~/.local/share/pinewood``."""
    if explicit := os.environ.get("PINEWOOD_DATA_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "pinewood"


def parse_seed(text: str, source: str) -> Identity:
    """An identity from a hex seed; ``source`` names where it came from in errors."""
    cleaned = text.strip()
    try:
        seed = bytes.fromhex(cleaned)
    except ValueError:
        raise KeyFileError(f"{source}: not a hex seed") from None
    if len(seed) != SEED_SIZE:
        raise KeyFileError(
            f"{source}: seed must be {SEED_SIZE} bytes ({2 * SEED_SIZE} hex characters), got {len(seed)}"
        )
    return Identity.from_seed(seed)


def write_key_file(path: Path, identity: Identity) -> None:
    """Create ``path`` (mode 0600) holding ``identity``'s seed; refuse to overwrite."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path}: already exists; refusing to overwrite a private key") from None
    except OSError as exc:
        raise KeyFileError(
            f"cannot create the key file {path}: {exc.strerror or exc}; set data_dir (--data-dir) to a "
            "directory this user can write, or key_file (--key-file) to an existing key"
        ) from None
    with os.fdopen(fd, "w") as handle:
        handle.write(identity.seed.hex() + "\n")


def load_key_file(path: Path) -> Identity:
    """Read an identity from ``path``, refusing a file readable by group or others."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such key file") from None
    except OSError as exc:
        raise KeyFileError(f"cannot read the key file {path}: {exc.strerror or exc}") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"{path}: private key is accessible by group or others (mode {stat.S_IMODE(info.st_mode):04o}); "
            f"run 'chmod 600 {path}'"
        )
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise KeyFileError(f"cannot read the key file {path}: {exc.strerror or exc}") from None
    return parse_seed(text, str(path))


def load_or_create_identity(path: Path, environ: dict[str, str] | None = None) -> tuple[Identity, str]:
    """The node's identity and where it came from: the environment, the file, or a new file."""
    env = os.environ if environ is None else environ
    if seed := env.get(SEED_ENV):
        return parse_seed(seed, SEED_ENV), f"${SEED_ENV}"
    try:
        exists = path.exists()
    except OSError as exc:
        raise KeyFileError(f"cannot look for the key file {path}: {exc.strerror or exc}") from None
    if exists:
        return load_key_file(path), str(path)
    identity = Identity.generate()
    write_key_file(path, identity)
    return identity, f"{path} (new)"
