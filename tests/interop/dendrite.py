"""Run a real Dendrite homeserver (``github.com/matrix-org/dendrite``) for tests.

Two parts:

* :func:`ensure_dendrite` builds the pinned release with ``go install`` (modules
  from the Go module proxy), once, into a cache directory, and returns the
  directory holding the ``dendrite`` and ``generate-keys`` binaries.
* :class:`Dendrite` writes a test configuration (SQLite databases in its data
  directory, one loopback plain-HTTP listener, outbound federation through an
  HTTPS ``CONNECT`` proxy whose TLS is checked against a local CA, no rate
  limits, shared-secret registration), starts the monolith, waits for its client
  API and stops it again.  Starting, stopping and shared-secret registration
  (which Dendrite serves at the same path as Synapse) come from
  :class:`tests.e2e.process.HomeserverProcess`, as for the Synapse harness.

How the pinned Dendrite federates through a proxy (read in its source and in
``gomatrixserverlib/fclient``, and measured with server names of 52 base32
characters, which it takes as they are):

* No configuration key sets a proxy: ``config.Proxy`` (``enabled``,
  ``protocol``, ``host``, ``port``) is parsed into nothing, and unknown keys such
  as ``federation_api.proxy_outbound`` are ignored without a word.  But every
  federation transport is built with ``Proxy: http.ProxyFromEnvironment``, so
  ``HTTPS_PROXY`` makes each connection a ``CONNECT`` through that proxy (a
  ``socks5://`` URL works too, sending the name, not an address).  Without it,
  Dendrite resolves ``<name>`` itself and fails with "no such host".
* Per destination it first fetches ``https://<name>/.well-known/matrix/server``
  (``CONNECT <name>:443``) with Go's default transport, which honours the same
  environment.  The answer ``{"m.server": "<name>:8448"}`` carries a port, so it
  asks no DNS at all and sends ``CONNECT <name>:8448`` with ``Host: <name>:8448``.
  Without an answer it asks the system resolver for the ``_matrix-fed._tcp`` and
  then ``_matrix._tcp`` SRV records and falls back to ``<name>:8448`` (``Host:
  <name>``) whatever the resolver says (NXDOMAIN, SERVFAIL), but an unreachable
  resolver costs 10 s (two 5 s tries) per destination first.
* TLS is checked against the system roots, which Go's ``crypto/x509`` takes
  from ``SSL_CERT_FILE`` (and ``SSL_CERT_DIR``, pointed here at an empty
  directory so that only the given CA is trusted); no configuration key names a
  CA.  ``federation_api.disable_tls_validation`` turns checking off for
  federation requests only: the well-known fetch still checks, fails, and
  sends Dendrite to the resolver for SRV records.
* One HTTP listener (``-http-bind-address``) serves the client, federation, key,
  media, Synapse-compatible admin and Dendrite admin APIs together: the monolith
  has no federation-only listener, so whatever reaches that port can reach them all.
* It knows room versions 1 to 11 (10 by default); version 12 rooms, whose IDs
  carry no server name, are refused ("Invalid RoomID").
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.e2e.process import HomeserverFailed, HomeserverProcess, environment_without_proxy_or_ca

DENDRITE_VERSION = "v0.13.8"
DENDRITE_MODULE = "github.com/matrix-org/dendrite"
DIR_ENV = "PINEWOOD_DENDRITE_DIR"
BINARIES = ("dendrite", "generate-keys")
_STAMP_NAME = ".pinewood-dendrite-built"
_BUILD_TIMEOUT_S = 1200.0


class DendriteUnavailable(RuntimeError):
    """Dendrite could not be built here; the message says why."""


class DendriteFailed(HomeserverFailed):
    """A Dendrite process did not start, or died; the message carries its log's tail."""


def default_cache_dir() -> Path:
    """``$PINEWOOD_DENDRITE_DIR``, else ``~/.cache/pinewood/dendrite-<version>``."""
    explicit = os.environ.get(DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    return Path.home() / ".cache" / "pinewood" / f"dendrite-{DENDRITE_VERSION}"


def _built(directory: Path) -> bool:
    try:
        stamp = (directory / _STAMP_NAME).read_text().strip()
    except OSError:
        return False
    return stamp == DENDRITE_VERSION and all((directory / "bin" / name).is_file() for name in BINARIES)


def ensure_dendrite(cache_dir: Path | None = None) -> Path:
    """Build Dendrite ``DENDRITE_VERSION`` into ``<cache_dir>/bin``, once; returns that directory.

    A stamp file, written only after the build has been checked, marks it done;
    an exclusive lock on ``<cache_dir>.lock`` serialises concurrent callers.
    Raises :class:`DendriteUnavailable` when ``go`` is missing or the build fails.
    """
    directory = (cache_dir or default_cache_dir()).expanduser().resolve()
    if _built(directory):
        return directory / "bin"
    directory.parent.mkdir(parents=True, exist_ok=True)
    lock_path = directory.with_name(directory.name + ".lock")
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not _built(directory):
                _build(directory)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return directory / "bin"


def _run_go(step: list[str], env: Mapping[str, str], what: str) -> str:
    try:
        done = subprocess.run(
            step,
            capture_output=True,
            text=True,
            timeout=_BUILD_TIMEOUT_S,
            check=False,
            env=dict(env),
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise DendriteUnavailable(f"{what} took over {_BUILD_TIMEOUT_S:.0f} s") from None
    except OSError as exc:
        raise DendriteUnavailable(f"{what} failed: {exc}") from None
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-20:]
        raise DendriteUnavailable(f"{what} failed (exit {done.returncode}):\n" + "\n".join(tail))
    return done.stdout


def _build(directory: Path) -> None:
    go = shutil.which("go")
    if go is None:
        raise DendriteUnavailable(f"no `go` command on PATH (it builds Dendrite {DENDRITE_VERSION})")
    shutil.rmtree(directory, ignore_errors=True)
    partial = directory / "bin.partial"
    partial.mkdir(parents=True)
    env = {**os.environ, "GOBIN": str(partial)}
    packages = [f"{DENDRITE_MODULE}/cmd/{name}@{DENDRITE_VERSION}" for name in BINARIES]
    _run_go([go, "install", *packages], env, f"go install {' '.join(packages)}")
    reported = _run_go([str(partial / "dendrite"), "-version"], os.environ, "dendrite -version").strip()
    if f"v{reported}" != DENDRITE_VERSION:
        raise DendriteUnavailable(f"the built dendrite reports version {reported!r}")
    partial.rename(directory / "bin")
    (directory / _STAMP_NAME).write_text(DENDRITE_VERSION + "\n")


class Dendrite(HomeserverProcess):
    """One Dendrite monolith with a test configuration, as a context manager.

    ``http_port`` gets its only listener, plain HTTP on 127.0.0.1, serving every
    API (a gateway in front of it supplies the federation TLS).  With
    ``proxy_url``, outbound federation goes through that HTTPS ``CONNECT`` proxy
    (``HTTPS_PROXY``); ``ca_pem`` is then the only CA trusted for the
    certificates presented inside the tunnels (``SSL_CERT_FILE``).
    ``extra_config`` entries are merged into the generated configuration's
    sections (``{"federation_api": {...}}`` updates that section).
    """

    failure = DendriteFailed

    def __init__(
        self,
        binaries: Path,
        server_name: str,
        data_dir: Path,
        *,
        http_port: int,
        proxy_url: str | None = None,
        ca_pem: Path | None = None,
        log_level: str = "info",
        extra_config: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(server_name, data_dir)
        self.binaries = binaries
        self.http_port = http_port
        self.proxy_url = proxy_url
        self.ca_pem = ca_pem
        self.log_level = log_level
        self.extra_config = dict(extra_config or {})

    @property
    def config_path(self) -> Path:
        return self.data_dir / "dendrite.yaml"

    @property
    def private_key_path(self) -> Path:
        return self.data_dir / "matrix_key.pem"

    @property
    def log_path(self) -> Path:
        """Dendrite's own log (``log_level`` and up), written by its file hook."""
        return self.data_dir / "dendrite.log"

    @property
    def stdio_path(self) -> Path:
        """The process's stdout and stderr (start-up failures and panics land here)."""
        return self.data_dir / "dendrite.stdio"

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def federation_url(self) -> str:
        """The same listener: Dendrite serves federation beside everything else."""
        return self.client_url

    def _database(self, name: str) -> dict[str, Any]:
        return {"connection_string": f"file:{self.data_dir / name}.db"}

    def config(self) -> dict[str, Any]:
        """The configuration, as written to ``dendrite.yaml`` (as JSON, which is YAML)."""
        d = self.data_dir
        config: dict[str, Any] = {
            "version": 2,
            "global": {
                "server_name": self.server_name,
                "private_key": str(self.private_key_path),
                "key_validity_period": "168h",
                "trusted_third_party_id_servers": [],
                "disable_federation": False,
                "presence": {"enable_inbound": False, "enable_outbound": False},
                "report_stats": {"enabled": False},
                "server_notices": {"enabled": False},
                "jetstream": {
                    "addresses": [],
                    "storage_path": str(d / "jetstream"),
                    "topic_prefix": "Dendrite",
                },
                "metrics": {"enabled": False},
                "dns_cache": {"enabled": False},
                "cache": {"max_size_estimated": "64mb", "max_age": "1h"},
            },
            "app_service_api": {"config_files": []},
            "client_api": {
                "registration_disabled": True,
                "guests_disabled": True,
                "registration_shared_secret": self.registration_shared_secret,
                "enable_registration_captcha": False,
                "rate_limiting": {"enabled": False, "threshold": 10000, "cooloff_ms": 1},
            },
            "federation_api": {
                "database": self._database("federationapi"),
                "disable_tls_validation": False,
                "disable_http_keepalives": False,
                # Keys come from each remote itself, never from matrix.org.
                "key_perspectives": [],
                "prefer_direct_fetch": True,
            },
            "key_server": {"database": self._database("keyserver")},
            "media_api": {
                "database": self._database("mediaapi"),
                "base_path": str(d / "media_store"),
                "max_file_size_bytes": 10485760,
                "max_thumbnail_generators": 1,
                "thumbnail_sizes": [{"width": 32, "height": 32, "method": "crop"}],
            },
            "room_server": {"database": self._database("roomserver")},
            "sync_api": {"database": self._database("syncapi"), "search": {"enabled": False}},
            "user_api": {"account_database": self._database("userapi"), "bcrypt_cost": 4},
            "relay_api": {"database": self._database("relayapi")},
            "mscs": {"mscs": [], "database": self._database("mscs")},
            "tracing": {"enabled": False},
            "logging": [{"type": "file", "level": self.log_level, "params": {"path": str(d)}}],
        }
        for section, value in self.extra_config.items():
            if isinstance(value, Mapping) and isinstance(config.get(section), dict):
                config[section].update(value)
            else:
                config[section] = value
        return config

    def write_config(self) -> None:
        """Write ``dendrite.yaml`` and, once, the ed25519 signing key."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "no-extra-ca").mkdir(exist_ok=True)
        self.config_path.write_text(json.dumps(self.config(), indent=2))
        if self.private_key_path.exists():
            return
        done = subprocess.run(
            [str(self.binaries / "generate-keys"), "--private-key", str(self.private_key_path)],
            cwd=self.data_dir,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise DendriteFailed(f"generate-keys failed:\n{done.stdout}{done.stderr}")

    def environment(self) -> dict[str, str]:
        """The process environment: ours, minus proxy and CA settings, plus ``proxy_url`` and ``ca_pem``."""
        env = environment_without_proxy_or_ca()
        if self.proxy_url is not None:
            env["HTTPS_PROXY"] = env["https_proxy"] = self.proxy_url
        if self.ca_pem is not None:
            env["SSL_CERT_FILE"] = str(self.ca_pem.resolve())
            env["SSL_CERT_DIR"] = str(self.data_dir / "no-extra-ca")
        return env

    def command(self) -> list[str]:
        return [
            str(self.binaries / "dendrite"),
            "-config",
            str(self.config_path),
            f"-http-bind-address=127.0.0.1:{self.http_port}",
        ]
