"""The gateway's CA on disk: the key private to the node, the certificate copied
where a homeserver running as another user can read it (``gateway_ca_export``)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from router.gateway.ca import CAError, LocalCA, export_certificate
from router.gateway.service import Gateway, GatewaySettings
from tests.overlay import MemoryOverlay

STRICT_UMASK = 0o077
"""The umask of the systemd unit: a mode left to it would be 0600 or 0700."""


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def strict_umask() -> Iterator[None]:
    old = os.umask(STRICT_UMASK)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("strict_umask")
def test_the_key_stays_private_and_the_export_is_world_readable(tmp_path: Path) -> None:
    ca = LocalCA(tmp_path / "data" / "gateway", label="test")
    target = tmp_path / "run" / "pinewood" / "gateway-ca.pem"
    export_certificate(ca.certificate, target)
    assert mode(ca.directory) == 0o700
    assert mode(ca.key_path) == 0o600
    assert mode(target) == 0o644
    assert mode(target.parent) == mode(target.parent.parent) == 0o755  # both were missing
    assert x509.load_pem_x509_certificate(target.read_bytes()) == ca.certificate
    assert target.read_bytes() == ca.cert_path.read_bytes()
    assert [p.name for p in target.parent.iterdir()] == ["gateway-ca.pem"]  # no temporary file left


@pytest.mark.usefixtures("strict_umask")
def test_the_export_replaces_an_old_file_and_leaves_its_directory_alone(tmp_path: Path) -> None:
    directory = tmp_path / "shared"
    directory.mkdir()
    os.chmod(directory, 0o750)
    target = directory / "gateway-ca.pem"
    target.write_text("stale")
    os.chmod(target, 0o600)
    ca = LocalCA(tmp_path / "gateway")
    export_certificate(ca.certificate, target)
    assert x509.load_pem_x509_certificate(target.read_bytes()) == ca.certificate
    assert mode(target) == 0o644
    assert mode(directory) == 0o750


def test_an_export_that_cannot_be_written_names_the_setting(tmp_path: Path) -> None:
    ca = LocalCA(tmp_path / "gateway")
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(
        CAError, match=r"gateway_ca_export: cannot write the CA certificate to .*file/gateway-ca.pem"
    ):
        export_certificate(ca.certificate, blocker / "gateway-ca.pem")


def test_the_gateway_exports_at_start_and_reports_the_copy(tmp_path: Path) -> None:
    async def main() -> None:
        overlay = MemoryOverlay(tmp_path)
        node = overlay.add()
        base = GatewaySettings(
            key=node.key,
            server_name_suffix="",
            ca_dir=tmp_path / "gateway",
            listen=("127.0.0.1", 0),
            homeserver=None,
            homeserver_url="",
            session_timeout=1.0,
            idle_timeout=30.0,
            max_streams=16,
        )
        try:
            plain = Gateway(base, node.sessions)
            assert plain.status()["ca_certificate"] == str(tmp_path / "gateway" / "gateway-ca.pem")
            plain.close()
            export = tmp_path / "run" / "gateway-ca.pem"
            exporting = Gateway(dataclasses.replace(base, ca_export=export), node.sessions)
            assert exporting.ca is not None and not export.exists()  # written as the node starts
            exporting.export_ca()
            assert exporting.status()["ca_certificate"] == str(export)
            assert x509.load_pem_x509_certificate(export.read_bytes()) == exporting.ca.certificate
            exporting.close()
            # No proxy, no CA: nothing is written, and nothing reported.
            export.unlink()
            quiet = Gateway(dataclasses.replace(base, listen=None, ca_export=export), node.sessions)
            quiet.export_ca()
            assert "ca_certificate" not in quiet.status()
            assert not export.exists()
        finally:
            await overlay.close()

    asyncio.run(asyncio.wait_for(main(), 30))
