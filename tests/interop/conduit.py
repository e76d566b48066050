"""Run a Conduit-family homeserver (tuwunel) for tests.

tuwunel is built from its public source with cargo; the project ships no
recipe for that, and the tests take a binary that is already there:
``$PINEWOOD_TUWUNEL`` (a path to the ``tuwunel`` binary), else
``/var/cache/pinewood-conduit/tuwunel``.  Without one, the tests that need it
skip, unless ``PINEWOOD_REQUIRE_CONDUIT=1`` (``make test-conduit``) makes them
fail.

:class:`Tuwunel` writes a test configuration (its RocksDB in the data
directory, one loopback plain-HTTP listener serving client and federation
APIs, registration by token, no notary key servers, outbound federation
through an HTTP proxy whose TLS is checked against a local CA) and starts it.
How it is pointed at the gateway, read in its source (v1.4.6):

* ``[global.proxy] global = { url = "..." }`` sends every outgoing request
  through one proxy (``src/core/config/proxy.rs``: ``Proxy::all``), HTTPS as
  ``CONNECT`` with the name, not an address.
* Its HTTP client is reqwest with ``rustls-tls-native-roots``; the roots come
  from ``rustls-native-certs``, which reads ``SSL_CERT_FILE`` instead of the
  system store when it is set.  No configuration key names a CA.
* ``trusted_servers`` defaults to ``["matrix.org"]`` (keys fetched through a
  notary); here it is empty, so keys come from each server itself.
* Server names of 52 base32 characters are taken as they are.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.e2e.client import MatrixClient, MatrixError, _request
from tests.e2e.process import HomeserverFailed, HomeserverProcess, environment_without_proxy_or_ca

BINARY_ENV = "PINEWOOD_TUWUNEL"
REQUIRE_ENV = "PINEWOOD_REQUIRE_CONDUIT"
DEFAULT_BINARY = Path("/var/cache/pinewood-conduit/tuwunel")


class TuwunelUnavailable(RuntimeError):
    """No tuwunel binary here; the message says where one was looked for."""


class TuwunelFailed(HomeserverFailed):
    """A tuwunel process did not start, or died; the message carries its log's tail."""


def tuwunel_binary() -> Path:
    """The binary the tests run, or :class:`TuwunelUnavailable`."""
    path = Path(os.environ.get(BINARY_ENV) or DEFAULT_BINARY)
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise TuwunelUnavailable(
            f"no tuwunel binary at {path} (build tuwunel from its source and set ${BINARY_ENV})"
        )
    return path


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


class Tuwunel(HomeserverProcess):
    failure = TuwunelFailed

    def __init__(
        self,
        binary: Path,
        server_name: str,
        data_dir: Path,
        *,
        port: int,
        proxy_url: str | None = None,
        ca_pem: Path | None = None,
    ) -> None:
        super().__init__(server_name, data_dir)
        self.binary = binary
        self.port = port
        self.proxy_url = proxy_url
        self.ca_pem = ca_pem
        self.registration_token = self.registration_shared_secret

    @property
    def config_path(self) -> Path:
        return self.data_dir / "tuwunel.toml"

    @property
    def log_path(self) -> Path:
        return self.stdio_path  # it logs to its standard output

    @property
    def stdio_path(self) -> Path:
        return self.data_dir / "tuwunel.stdio"

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> str:
        settings: dict[str, object] = {
            "server_name": self.server_name,
            "database_path": str(self.data_dir / "db"),
            "address": ["127.0.0.1"],
            "port": self.port,
            "allow_registration": True,
            "registration_token": self.registration_token,
            "allow_federation": True,
            "trusted_servers": [],
            "ip_range_denylist": [],
            "log": "info",
            "new_user_displayname_suffix": "",
        }
        lines = ["[global]", *(f"{k} = {_toml(v)}" for k, v in settings.items())]
        if self.proxy_url is not None:
            lines += ["", "[global.proxy]", f"global = {{ url = {_toml(self.proxy_url)} }}"]
        return "\n".join(lines) + "\n"

    def write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config())

    def environment(self) -> dict[str, str]:
        """Ours, minus proxy and CA settings, plus ``ca_pem`` as the only roots."""
        env = environment_without_proxy_or_ca()
        if self.ca_pem is not None:
            env["SSL_CERT_FILE"] = str(self.ca_pem.resolve())
        return env

    def command(self) -> list[str]:
        return [str(self.binary), "-c", str(self.config_path)]

    def register_user(
        self, username: str, password: str | None = None, *, admin: bool = False
    ) -> MatrixClient:
        """Register through the client API with the registration token (tuwunel
        has no shared-secret admin API); ``admin`` is not supported."""
        if admin:
            raise TuwunelFailed("tuwunel makes its first user the admin; no other is made here")
        password = password or self.registration_token[:16]
        body: dict[str, object] = {"username": username, "password": password}
        try:
            answer = _request(self.client_url, "POST", "/_matrix/client/v3/register", body)
        except MatrixError as exc:
            if exc.status != 401 or "session" not in exc.body:
                raise
            body["auth"] = {
                "type": "m.login.registration_token",
                "token": self.registration_token,
                "session": exc.body["session"],
            }
            answer = _request(self.client_url, "POST", "/_matrix/client/v3/register", body)
        return MatrixClient(self.client_url, str(answer["user_id"]), str(answer["access_token"]))
