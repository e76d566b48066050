"""Node configuration: the values of the settings described in :mod:`router.daemon.settings`.

Precedence, highest first: command-line flag, environment variable
(``PINEWOOD_<NAME>``, lists comma-separated), the TOML file, the default.  The
defaults work with no file at all.  Every bad value raises :class:`ConfigError`
naming the setting and where the value came from.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router.daemon.keyfile import default_data_dir
from router.daemon.settings import (
    BY_NAME,
    DEFAULT_ADMIN,
    DEFAULT_EXTENSIONS,
    DEFAULT_PORT,
    SETTINGS,
    ConfigError,
)
from router.gateway.shares import REQUEST_BURST, REQUESTS_PER_S
from router.links.uri import PeerURI, URIError, parse_peer_uri
from router.matrix.federation import DEFAULT_PATHS
from router.wire.extension import EXTENSION_NAMES

__all__ = [
    "DEFAULT_ADMIN",
    "ConfigError",
    "NodeConfig",
    "load_config",
    "load_config_sources",
    "parse_host_port",
]


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """The value of every setting.  ``router.daemon.settings.SETTINGS`` says what each
    one means and which values it takes; a test checks that these fields and their
    defaults agree with that table, name for name."""

    listen: tuple[str, ...] = (f"tcp://0.0.0.0:{DEFAULT_PORT}",)
    peers: tuple[str, ...] = ()
    admin: str = DEFAULT_ADMIN
    data_dir: str = ""
    key_file: str = ""
    uvloop: bool = True
    log_format: str = "auto"
    log_level: str = "info"
    max_peers: int = 64
    traffic_queue_frames: int = 2048
    queue_target_ms: float = 5.0
    peer_receive_buffer: int = 131072
    peer_send_buffer: int = 65536
    hop_limiting: bool = False
    wakeup_broadcasts: bool = True
    routing_extensions: tuple[str, ...] = DEFAULT_EXTENSIONS
    handshake_timeout: float = 10.0
    handshakes_per_minute: int = 120
    quic_engine: str = "qh3"
    lan_discovery: bool = True
    lan_interfaces: tuple[str, ...] = ()
    allow_keys: tuple[str, ...] = ()
    admin_allow_remote: bool = False
    session_timeout: float = 10.0
    gateway_listen: str = ""
    gateway_ca_export: str = ""
    homeserver: str = ""
    server_name_suffix: str = ""
    gateway_max_streams: int = 256
    gateway_idle_timeout: float = 120.0
    gateway_max_streams_per_peer: int = 0
    gateway_requests_per_second: float = REQUESTS_PER_S
    gateway_request_burst: float = REQUEST_BURST
    gateway_federation_paths: tuple[str, ...] = DEFAULT_PATHS
    relays: tuple[str, ...] = ()
    relay_enable: bool = False
    relay_store: str = ""
    relay_max_expiry: float = 7 * 86400.0
    relay_mailbox_max_count: int = 10_000
    relay_mailbox_max_bytes: int = 256 << 20
    relay_requests_per_second: float = 2000.0
    relay_request_burst: float = 4000.0
    relay_fetch_interval: float = 60.0
    relay_direct: bool = False

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir) if self.data_dir else default_data_dir()

    @property
    def key_path(self) -> Path:
        return Path(self.key_file) if self.key_file else self.data_path / "node.key"

    def listen_uris(self) -> list[PeerURI]:
        return [_uri(u, "listen") for u in self.listen]

    def peer_uris(self) -> list[PeerURI]:
        return [_uri(u, "peers") for u in self.peers]

    @property
    def extension_bits(self) -> int:
        """The routing extensions this node announces, as handshake bits."""
        bits = 0
        for name in self.routing_extensions:
            bits |= EXTENSION_NAMES[name]
        return bits

    @property
    def admin_address(self) -> tuple[str, int]:
        return parse_host_port(self.admin, "admin")

    @property
    def relay_store_url(self) -> str:
        return self.relay_store or f"sqlite:///{self.data_path / 'relay' / 'store.db'}"

    @property
    def gateway_ca_export_path(self) -> Path | None:
        """Where to write the copy of the gateway's CA certificate (None: nowhere)."""
        return Path(self.gateway_ca_export) if self.gateway_ca_export else None

    @property
    def gateway_streams_per_peer(self) -> int:
        """Inbound federation streams one node may hold open (a quarter of all unless set)."""
        return self.gateway_max_streams_per_peer or max(1, self.gateway_max_streams // 4)

    @property
    def homeserver_address(self) -> tuple[str, int]:
        """Host and port of the homeserver's plain-HTTP federation listener."""
        text = self.homeserver
        if not text.startswith("http://"):
            raise ConfigError(f"homeserver: {text!r} must be http://host:port (a plain-HTTP listener)")
        return parse_host_port(text.removeprefix("http://").rstrip("/"), "homeserver")


def _uri(text: str, setting: str) -> PeerURI:
    try:
        return parse_peer_uri(text)
    except URIError as exc:
        raise ConfigError(f"{setting}: {exc}") from None


def parse_host_port(text: str, setting: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{setting}: {text!r} is not host:port")
    return host.strip("[]") or "127.0.0.1", int(port)


def load_config(
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, object] | None = None,
) -> NodeConfig:
    """Merge defaults, the TOML file, the environment and flags; validate everything."""
    return load_config_sources(path, environ, flags)[0]


def load_config_sources(
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, object] | None = None,
) -> tuple[NodeConfig, dict[str, str]]:
    """:func:`load_config`, and where each setting's value came from ("default",
    "file PATH", "environment $NAME" or "flag --name"), by setting name."""
    values: dict[str, Any] = {}
    sources = {setting.name: "default" for setting in SETTINGS}
    if path is not None:
        for key, value in _read_file(path).items():
            setting = BY_NAME.get(key.replace("-", "_"))
            if setting is None:
                raise ConfigError(f"{path}: unknown setting {key!r}")
            values[setting.name] = setting.convert(value, f"{key} (in {path})")
            sources[setting.name] = f"file {path}"
    env = os.environ if environ is None else environ
    for setting in SETTINGS:
        if raw := env.get(setting.env):  # an empty variable counts as unset
            values[setting.name] = setting.convert(raw, f"{setting.name} (from ${setting.env})")
            sources[setting.name] = f"environment ${setting.env}"
    for name, value in (flags or {}).items():
        if value is not None:
            setting = BY_NAME[name]
            values[name] = setting.convert(value, setting.flag_name)
            sources[name] = f"flag {setting.flag_name}"
    config = NodeConfig(**values)
    config.listen_uris()
    config.peer_uris()
    _check_gateway(config)
    _check_relay(config)
    _check_routing(config)
    host, _ = config.admin_address
    if not config.admin_allow_remote and not _is_loopback(host):
        raise ConfigError(
            f"admin: {config.admin!r} is not a loopback address; the admin API has no authentication "
            "(set admin_allow_remote = true to expose it anyway)"
        )
    return config, sources


def _read_file(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path}: {exc}") from None


def _check_routing(config: NodeConfig) -> None:
    for name in config.routing_extensions:
        if name not in EXTENSION_NAMES:
            raise ConfigError(
                f"routing_extensions: unknown extension {name!r}; known: {', '.join(EXTENSION_NAMES)}"
            )


def _check_relay(config: NodeConfig) -> None:
    url = config.relay_store
    if url and not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise ConfigError(f"relay_store: {url!r} must be sqlite:///path or postgresql://...")


def _check_gateway(config: NodeConfig) -> None:
    if config.gateway_listen:
        host, _ = parse_host_port(config.gateway_listen, "gateway_listen")
        if not _is_loopback(host):
            raise ConfigError(
                f"gateway_listen: {config.gateway_listen!r} is not a loopback address; the proxy has no "
                "authentication and would let anyone send federation traffic as this node"
            )
    export = config.gateway_ca_export
    if export and (export.endswith("/") or Path(export).name in ("", ".", "..")):
        raise ConfigError(f"gateway_ca_export: {export!r} must name a file, not a directory")
    if config.homeserver:
        config.homeserver_address  # noqa: B018 - validates
    if config.gateway_max_streams_per_peer > config.gateway_max_streams:
        raise ConfigError(
            f"gateway_max_streams_per_peer: {config.gateway_max_streams_per_peer} is more than "
            f"gateway_max_streams ({config.gateway_max_streams}); one node could take every stream"
        )
    for path in config.gateway_federation_paths:
        if not path.startswith("/_matrix/") or not path.endswith("/") or ".." in path:
            raise ConfigError(
                f"gateway_federation_paths: {path!r} must be a path prefix under /_matrix/ ending in '/'"
            )
    suffix = config.server_name_suffix
    if suffix and (
        not suffix.startswith(".")
        or len(suffix) > 100
        or not all(c.isascii() and (c.isalnum() or c in ".-") for c in suffix)
        or ".." in suffix
        or suffix.endswith(".")
    ):
        raise ConfigError(
            f"server_name_suffix: {suffix!r} must be empty or a DNS suffix such as '.p2p' "
            "(a dot, then letters, digits, dots and hyphens)"
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
