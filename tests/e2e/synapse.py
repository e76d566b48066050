"""Run real Synapse homeservers for end-to-end tests.

Three parts:

* :func:`ensure_synapse` installs a pinned ``matrix-synapse`` from the package index
  into a virtualenv of its own, once, and returns that virtualenv's interpreter.
* :class:`Homeserver` writes a test configuration (SQLite, loopback listeners,
  generous rate limits, outbound federation through an HTTPS ``CONNECT`` proxy
  whose TLS is checked against a local CA), starts Synapse, waits for its client
  API and stops it again.
* :class:`MatrixClient` and :func:`register_user` drive the client-server API with
  the standard library only.

How Synapse federates through a proxy (measured on the pinned release, with
server names of 52 base32 characters):

* ``https_proxy`` in its environment makes every federation connection a
  ``CONNECT`` through that proxy, to a loopback proxy too (the IP blocklist
  applies to destinations, not to the proxy).  Synapse never resolves the
  destination's A/AAAA records itself, so the blocklist never sees it either.
* Per destination it first fetches ``/.well-known/matrix/server`` through
  ``CONNECT <name>:443`` (``Host: <name>``).  An answer of
  ``{"m.server": "<name>:8448"}`` (cached for a day) makes it skip DNS entirely.
  Without one (404, refused ``CONNECT``, failed handshake; remembered for an hour
  unless a valid answer was seen before, then for two minutes) it looks up
  the ``_matrix-fed._tcp.<name>`` and ``_matrix._tcp.<name>`` SRV records
  through the system resolver before ``CONNECT <name>:8448``; NXDOMAIN is fine,
  but a SERVFAIL fails the request at once and an unreachable resolver makes it
  time out.  So a gateway should answer the well-known itself, every time.
* Inside each tunnel it speaks TLS with SNI ``<name>`` and checks the
  certificate against ``federation_custom_ca_list`` (which replaces the system
  roots) and ``<name>`` as a DNS subject alternative name.  Federation requests
  then carry ``Host: <name>:8448`` when delegated as above (``Host: <name>``
  otherwise).
* With ``trusted_key_servers: []`` it fetches a remote's signing keys from
  ``GET /_matrix/key/v2/server`` on that remote, through the same proxy.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from bench.daemons import free_port as daemons_free_port
from tests.e2e.client import MatrixClient, MatrixError, login, register_user
from tests.e2e.process import HomeserverFailed, HomeserverProcess

__all__ = [
    "SYNAPSE_VERSION",
    "Homeserver",
    "MatrixClient",
    "MatrixError",
    "SynapseFailed",
    "SynapseUnavailable",
    "ensure_synapse",
    "free_port",
    "homeserver",
    "login",
    "register_user",
]

SYNAPSE_VERSION = "1.163.2"
VENV_ENV = "PINEWOOD_SYNAPSE_VENV"
_STAMP_NAME = ".pinewood-synapse-installed"
_INSTALL_TIMEOUT_S = 900.0
_LOG_FORMAT = "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s"


class SynapseUnavailable(RuntimeError):
    """Synapse could not be installed (typically: no route to the package index)."""


class SynapseFailed(HomeserverFailed):
    """A homeserver did not start, or died; the message carries the log's tail."""


def default_venv_dir() -> Path:
    """``$PINEWOOD_SYNAPSE_VENV``, else ``~/.cache/pinewood/synapse-<version>``."""
    explicit = os.environ.get(VENV_ENV)
    if explicit:
        return Path(explicit).expanduser()
    return Path.home() / ".cache" / "pinewood" / f"synapse-{SYNAPSE_VERSION}"


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _installed(venv: Path) -> bool:
    stamp = venv / _STAMP_NAME
    try:
        return stamp.read_text().strip() == SYNAPSE_VERSION and _venv_python(venv).exists()
    except OSError:
        return False


def ensure_synapse(cache_dir: Path | None = None) -> Path:
    """Install ``matrix-synapse==SYNAPSE_VERSION`` into the virtualenv ``cache_dir``.

    Returns the virtualenv's ``python``.  The install happens once: a stamp file,
    written only after the install has been checked, marks it done, so an
    interrupted install is wiped and redone on the next call.  An exclusive lock
    on ``<cache_dir>.lock`` serialises concurrent callers.  Raises
    :class:`SynapseUnavailable` when the install fails.
    """
    venv = (cache_dir or default_venv_dir()).expanduser().resolve()
    if _installed(venv):
        return _venv_python(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    lock_path = venv.with_name(venv.name + ".lock")
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if _installed(venv):
                return _venv_python(venv)
            _install(venv)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return _venv_python(venv)


def _install(venv: Path) -> None:
    shutil.rmtree(venv, ignore_errors=True)
    python = _venv_python(venv)
    steps: list[list[str]] = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--only-binary=:all:",
            f"matrix-synapse=={SYNAPSE_VERSION}",
        ],
        [str(python), "-c", "import synapse, sys; sys.stdout.write(synapse.__version__)"],
    ]
    output = ""
    for step in steps:
        try:
            done = subprocess.run(
                step, capture_output=True, text=True, timeout=_INSTALL_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SynapseUnavailable(f"installing Synapse failed at {step[2:]}: {exc}") from exc
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
            raise SynapseUnavailable(
                f"installing Synapse failed at {step[2:]} (exit {done.returncode}):\n" + "\n".join(tail)
            )
        output = done.stdout
    if output.strip() != SYNAPSE_VERSION:
        raise SynapseUnavailable(f"installed Synapse reports version {output.strip()!r}")
    (venv / _STAMP_NAME).write_text(SYNAPSE_VERSION + "\n")


def free_port() -> int:
    """A TCP port on 127.0.0.1, from the same allocator as the router daemons'
    (so a homeserver and a router of one test never get the same port)."""
    return daemons_free_port()


# Generous enough that no test is ever throttled.
_NO_LIMIT = {"per_second": 10000, "burst_count": 10000}
RELAXED_RATE_LIMITS: dict[str, Any] = {
    "rc_message": _NO_LIMIT,
    "rc_registration": _NO_LIMIT,
    "rc_registration_token_validity": _NO_LIMIT,
    "rc_login": {"address": _NO_LIMIT, "account": _NO_LIMIT, "failed_attempts": _NO_LIMIT},
    "rc_admin_redaction": _NO_LIMIT,
    "rc_joins": {"local": _NO_LIMIT, "remote": _NO_LIMIT},
    "rc_joins_per_room": _NO_LIMIT,
    "rc_invites": {"per_room": _NO_LIMIT, "per_user": _NO_LIMIT, "per_issuer": _NO_LIMIT},
    "rc_3pid_validation": _NO_LIMIT,
    "rc_presence": {"per_user": _NO_LIMIT},
    "rc_federation": {
        "window_size": 1000,
        "sleep_limit": 10000,
        "sleep_delay": 0,
        "reject_limit": 10000,
        "concurrent": 100,
    },
}


class Homeserver(HomeserverProcess):
    """One Synapse process with a test configuration, as a context manager.

    ``federation_port`` gets a plain-HTTP listener serving only the federation API
    (a gateway in front of it supplies the TLS); ``client_port`` the client API.
    With ``proxy_url``, all outbound federation goes through that HTTPS ``CONNECT``
    proxy (``https_proxy``); ``ca_pem`` is then the CA that signs the certificates
    the proxy presents inside the tunnels.  ``extra_config`` entries override the
    generated configuration at the top level.
    """

    failure = SynapseFailed

    def __init__(
        self,
        python: Path,
        server_name: str,
        data_dir: Path,
        *,
        federation_port: int,
        client_port: int,
        proxy_url: str | None = None,
        ca_pem: Path | None = None,
        log_level: str = "INFO",
        extra_config: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(server_name, data_dir)
        self.python = python
        self.federation_port = federation_port
        self.client_port = client_port
        self.proxy_url = proxy_url
        self.ca_pem = ca_pem
        self.log_level = log_level
        self.extra_config = dict(extra_config or {})

    @property
    def config_path(self) -> Path:
        return self.data_dir / "homeserver.yaml"

    @property
    def log_path(self) -> Path:
        """Synapse's own log (``log_level`` and up)."""
        return self.data_dir / "homeserver.log"

    @property
    def stdio_path(self) -> Path:
        """The process's stdout and stderr (start-up failures land here)."""
        return self.data_dir / "synapse.stdio"

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def federation_url(self) -> str:
        return f"http://127.0.0.1:{self.federation_port}"

    def config(self) -> dict[str, Any]:
        """The homeserver configuration, as written to ``homeserver.yaml``."""
        d = self.data_dir
        config: dict[str, Any] = {
            "server_name": self.server_name,
            "pid_file": str(d / "homeserver.pid"),
            "listeners": [
                {
                    "port": self.client_port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [{"names": ["client"], "compress": False}],
                },
                {
                    "port": self.federation_port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [{"names": ["federation"], "compress": False}],
                },
            ],
            "database": {"name": "sqlite3", "args": {"database": str(d / "homeserver.db")}},
            "log_config": str(d / "log.config"),
            "media_store_path": str(d / "media_store"),
            "signing_key_path": str(d / "signing.key"),
            "report_stats": False,
            "enable_registration": False,
            "registration_shared_secret": self.registration_shared_secret,
            "macaroon_secret_key": secrets.token_hex(16),
            "form_secret": secrets.token_hex(16),
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "serve_server_wellknown": False,
            "presence": {"enabled": False},
            "url_preview_enabled": False,
            "federation_verify_certificates": True,
            # Overrides any no_proxy inherited through the environment.
            "no_proxy_hosts": [],
            # Retry an unreachable destination after seconds, not the default ten
            # minutes: in a test the peer is often just coming up.
            "federation": {
                "destination_min_retry_interval": "1s",
                "destination_retry_multiplier": 1,
                "destination_max_retry_interval": "5s",
                "client_timeout": "30s",
            },
            **RELAXED_RATE_LIMITS,
        }
        if self.ca_pem is not None:
            config["federation_custom_ca_list"] = [str(self.ca_pem.resolve())]
        config.update(self.extra_config)
        return config

    def _log_config(self) -> dict[str, Any]:
        return {
            "version": 1,
            "formatters": {
                "precise": {
                    "format": _LOG_FORMAT,
                }
            },
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "formatter": "precise",
                    "filename": str(self.log_path),
                    "encoding": "utf8",
                }
            },
            "loggers": {"synapse.storage.SQL": {"level": "INFO"}},
            "root": {"level": self.log_level, "handlers": ["file"]},
            "disable_existing_loggers": False,
        }

    def write_config(self) -> None:
        """Write ``homeserver.yaml`` (JSON is YAML) and generate the signing key."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "log.config").write_text(json.dumps(self._log_config(), indent=2))
        self.config_path.write_text(json.dumps(self.config(), indent=2))
        done = subprocess.run(
            [
                str(self.python),
                "-m",
                "synapse.app.homeserver",
                "--config-path",
                str(self.config_path),
                "--generate-keys",
            ],
            cwd=self.data_dir,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise SynapseFailed(f"generating keys failed:\n{done.stdout}{done.stderr}")

    def environment(self) -> dict[str, str]:
        """The process environment: ours, minus any proxy settings, plus ``proxy_url``."""
        env = {
            k: v
            for k, v in os.environ.items()
            if k.lower() not in {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
        }
        if self.proxy_url is not None:
            env["https_proxy"] = env["HTTPS_PROXY"] = self.proxy_url
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def command(self) -> list[str]:
        return [str(self.python), "-m", "synapse.app.homeserver", "--config-path", str(self.config_path)]


@contextlib.contextmanager
def homeserver(python: Path, server_name: str, data_dir: Path, **kwargs: Any) -> Iterator[Homeserver]:
    """``Homeserver`` on two fresh ports, started and stopped around the block."""
    kwargs.setdefault("federation_port", free_port())
    kwargs.setdefault("client_port", free_port())
    with Homeserver(python, server_name, data_dir, **kwargs) as hs:
        yield hs
