"""The gateway's local certificate authority.

A homeserver that tunnels federation through the gateway (HTTP CONNECT, then
TLS inside) checks the certificate of the server it thinks it reaches.  The
gateway answers that TLS itself, with a certificate it mints for the
destination's server name on the fly, signed by a CA it creates once and keeps
in its data directory.  The homeserver is told to trust that CA for federation
(Synapse's ``federation_custom_ca_list``) and nothing else: the real end-to-end
authentication is the session's, by node key.

The CA's directory is the node's alone (mode 0700: it holds the CA's key).  A
homeserver that runs as another user reads the certificate from a copy the node
writes elsewhere (:func:`export_certificate`), world-readable, since a
certificate is public.
"""

from __future__ import annotations

import datetime
import os
import ssl
import tempfile
from collections import OrderedDict
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from router.gateway.errors import GatewayError

CA_LIFETIME = datetime.timedelta(days=3650)
LEAF_LIFETIME = datetime.timedelta(days=90)
MAX_CACHED_NAMES = 1024


class CAError(GatewayError):
    """The CA's files are unusable."""


EXPORT_FILE_MODE = 0o644
EXPORT_DIR_MODE = 0o755


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _make_public_dirs(directory: Path) -> None:
    """Make ``directory`` and any missing parent with mode 0755 whatever the umask
    (the unit's is 0077); directories that exist are left as they are."""
    missing = []
    while not directory.is_dir() and directory.parent != directory:
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        path.mkdir(mode=EXPORT_DIR_MODE)
        os.chmod(path, EXPORT_DIR_MODE)  # mkdir's mode is cut by the umask


def export_certificate(certificate: x509.Certificate, path: Path) -> None:
    """Write ``certificate`` (PEM) to ``path`` with mode 0644 whatever the umask,
    making its directory (0755) if it is missing, so that a homeserver running
    as another user can read it.  The file is replaced whole (written beside it,
    then renamed), so a reader never sees half a certificate.  :class:`CAError`
    if it cannot be written."""
    data = certificate.public_bytes(serialization.Encoding.PEM)
    parent = path.parent
    try:
        _make_public_dirs(parent)
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), EXPORT_FILE_MODE)
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise CAError(f"gateway_ca_export: cannot write the CA certificate to {path}: {reason}") from None


class LocalCA:
    """Loads (or creates) the CA in ``directory``; mints server certificates."""

    def __init__(self, directory: Path, label: str = "") -> None:
        self.directory = directory
        self.cert_path = directory / "gateway-ca.pem"
        self.key_path = directory / "gateway-ca-key.pem"
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.cert_path.exists() and self.key_path.exists():
            try:
                self.certificate = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
                key = serialization.load_pem_private_key(self.key_path.read_bytes(), None)
            except (ValueError, TypeError, OSError) as exc:
                raise CAError(f"gateway CA in {directory}: {exc}") from None
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise CAError(f"gateway CA in {directory}: the key is not an EC key")
            self.key = key
        else:
            self._create(label)
        # One key for every minted certificate: minting stays cheap, and the
        # certificates live only in this process.
        self._leaf_key = ec.generate_private_key(ec.SECP256R1())
        self._contexts: OrderedDict[str, ssl.SSLContext] = OrderedDict()

    def _create(self, label: str) -> None:
        now = datetime.datetime.now(datetime.UTC)
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Pinewood gateway CA {label}".strip())])
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + CA_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        _write_private(
            self.key_path,
            self.key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )
        self.cert_path.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def mint(self, name: str) -> x509.Certificate:
        """A server certificate for ``name``, signed by the CA."""
        now = datetime.datetime.now(datetime.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.certificate.subject)
            .public_key(self._leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(min(now + LEAF_LIFETIME, self.certificate.not_valid_after_utc))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )

    def server_context(self, name: str) -> ssl.SSLContext:
        """A TLS server context presenting a certificate for ``name`` (cached)."""
        context = self._contexts.get(name)
        if context is not None:
            self._contexts.move_to_end(name)
            return context
        chain = self.mint(name).public_bytes(serialization.Encoding.PEM) + self.certificate.public_bytes(
            serialization.Encoding.PEM
        )
        key = self._leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols(["http/1.1"])
        # ssl loads chains only from files: write both to a private temporary directory.
        with tempfile.TemporaryDirectory() as tmp:
            cert_file, key_file = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
            cert_file.write_bytes(chain)
            _write_private(key_file, key)
            context.load_cert_chain(cert_file, key_file)
        self._contexts[name] = context
        if len(self._contexts) > MAX_CACHED_NAMES:
            self._contexts.popitem(last=False)
        return context
