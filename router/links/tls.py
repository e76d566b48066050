"""TLS peerings: the same handshake and frames, inside TLS 1.3.

Both sides present a self-signed X.509 certificate made from the node's own
ed25519 key, in the form Pinecone's sessions use (common name and DNS name =
the hex key).  TLS 1.3's CertificateVerify proves the server holds the key its
certificate names; the dialling side checks that this key is the one the inner
Pinecone handshake proves (and, with ``?key=``, the one it meant to reach).
The listening side learns the dialler's key from the inner handshake, as on
plain TCP.  ``wss://`` peerings (WebSocket inside TLS) use the same certificate;
there the dialler holds the certificate to the key only when one is pinned with
``?key=``, since such a peer may be reached through a web server of its own.
Certificates are not checked against any authority: the key is the identity.
"""

from __future__ import annotations

import datetime
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import NameOID

from router.wire.keys import Identity

ALPN = "pinewood-peering/1"
WEBSOCKET_ALPN = "http/1.1"
"""What ``wss://`` peerings negotiate: a WebSocket is HTTP/1.1 inside the TLS."""
CERT_LIFETIME = datetime.timedelta(days=365)


def certificate_pem(identity: Identity, now: datetime.datetime) -> tuple[bytes, bytes]:
    """A self-signed certificate for ``identity`` and its private key, both PEM."""
    private = Ed25519PrivateKey.from_private_bytes(identity.seed)
    hex_key = identity.public_key.hex()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hex_key)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + CERT_LIFETIME)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hex_key)]), critical=False)
        .sign(private, None)
    )
    key_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def node_credentials(identity: Identity) -> tuple[x509.Certificate, Ed25519PrivateKey]:
    """The node's certificate (as :func:`certificate_pem` makes it) and private key,
    as objects, for aioquic's configurations."""
    cert_pem, _ = certificate_pem(identity, datetime.datetime.now(datetime.UTC))
    return x509.load_pem_x509_certificate(cert_pem), Ed25519PrivateKey.from_private_bytes(identity.seed)


def certificate_files(identity: Identity, directory: Path) -> tuple[Path, Path]:
    """Write (each start, mode 0600) the certificate and key files ``ssl`` loads."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert_pem, key_pem = certificate_pem(identity, datetime.datetime.now(datetime.UTC))
    paths = (directory / "peering-cert.pem", directory / "peering-key.pem")
    for path, data in zip(paths, (cert_pem, key_pem), strict=True):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    return paths


def _context(purpose: int, cert: Path, key: Path, alpn: str) -> ssl.SSLContext:
    context = ssl.SSLContext(purpose)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols([alpn])
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # no authorities: the key is checked by hand
    return context


def server_context(cert: Path, key: Path, alpn: str = ALPN) -> ssl.SSLContext:
    return _context(ssl.PROTOCOL_TLS_SERVER, cert, key, alpn)


def client_context(cert: Path, key: Path, alpn: str = ALPN) -> ssl.SSLContext:
    return _context(ssl.PROTOCOL_TLS_CLIENT, cert, key, alpn)


def peer_certificate_key(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> bytes | None:
    """The ed25519 key named by the other side's certificate, or None."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    try:
        public = x509.load_der_x509_certificate(der).public_key()
    except ValueError:
        return None
    if not isinstance(public, Ed25519PublicKey):
        return None
    return public.public_bytes_raw()
