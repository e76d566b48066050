"""A real node with the gateway on and ``gateway_ca_export`` set, as the systemd
unit runs it (umask 0077): the copy of the CA certificate can be read by another
user, the CA's key cannot."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from tests.deploy.node import running_node

UNIT_UMASK = 0o077
"""UMask= in deploy/pinewood.service."""


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory every user may enter (what /run is to the unit's /run/pinewood):
    pytest's own temporary directories are private to this user."""
    path = Path(tempfile.mkdtemp(prefix="pinewood-run-"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def read_as_nobody(path: Path) -> bytes:
    """The file's bytes read by the user nobody (only root can switch to it)."""
    nobody = pwd.getpwnam("nobody")
    done = subprocess.run(
        ["cat", str(path)],
        capture_output=True,
        user=nobody.pw_uid,
        group=nobody.pw_gid,
        extra_groups=[],
        timeout=10,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


def test_the_exported_certificate_is_readable_by_another_user(tmp_path: Path, public_dir: Path) -> None:
    data_dir = tmp_path / "data"
    export = public_dir / "pinewood" / "gateway-ca.pem"  # pinewood/ does not exist yet
    args = ["--gateway-listen=127.0.0.1:0", f"--gateway-ca-export={export}"]
    with running_node([sys.executable, "-m", "router"], data_dir, *args, umask=UNIT_UMASK) as node:
        gateway = json.loads(
            subprocess.run(
                [sys.executable, "-m", "router", "gateway", "--admin", node.admin, "--json"],
                capture_output=True,
                timeout=30,
                check=True,
            ).stdout
        )
        assert gateway["ca_certificate"] == str(export)
        assert mode(export) == 0o644
        assert mode(export.parent) == 0o755
        private = data_dir / "gateway"
        assert mode(private) == 0o700
        assert mode(private / "gateway-ca-key.pem") == 0o600
        exported = x509.load_pem_x509_certificate(export.read_bytes())
        assert exported == x509.load_pem_x509_certificate((private / "gateway-ca.pem").read_bytes())
        if os.geteuid() == 0:
            assert read_as_nobody(export) == export.read_bytes()
        else:
            # Not root: no other user to become.  Check what the kernel would check
            # instead: every directory on the way may be entered by others, and the
            # file read by them.
            assert all(mode(d) & 0o001 for d in export.parents), [oct(mode(d)) for d in export.parents]
            assert mode(export) & 0o004
