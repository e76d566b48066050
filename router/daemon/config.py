"""Node configuration: one TOML file, every setting also a flag and an environment variable.

Precedence, highest first: command-line flag, environment variable
(``PINEWOOD_<NAME>``, lists comma-separated), the TOML file, the default.  The
defaults work with no file at all.  Every bad value raises :class:`ConfigError`
naming the setting and where the value came from.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from router.daemon.keyfile import default_data_dir
from router.links.uri import PeerURI, URIError, parse_peer_uri

DEFAULT_PORT = 65432
DEFAULT_ADMIN = "127.0.0.1:65433"
ENV_PREFIX = "PINEWOOD_"


class ConfigError(ValueError):
    """A setting has a bad value; the message names it."""


@dataclass(frozen=True, slots=True)
class NodeConfig:
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
    hop_limiting: bool = False
    wakeup_broadcasts: bool = True
    handshake_timeout: float = 10.0
    handshakes_per_minute: int = 120
    """Failed, timed-out or refused inbound handshakes a source network (/24 or /64)
    may cause in a minute; past that, only keys the node knows get in from it."""
    lan_discovery: bool = True
    lan_interfaces: tuple[str, ...] = ()
    """LAN discovery runs only on these interfaces (none unless the operator names them)."""
    allow_keys: tuple[str, ...] = ()
    """If set, only these keys (hex) may peer with us inbound."""
    admin_allow_remote: bool = False
    """The admin API has no authentication: it binds only to loopback unless this is set."""
    session_timeout: float = 10.0
    """Seconds to wait for an end-to-end session with another node before giving up."""
    gateway_listen: str = ""
    """host:port of the homeserver-facing federation proxy (HTTP CONNECT, SOCKS5); empty = off."""
    homeserver: str = ""
    """The local homeserver's federation listener (http://127.0.0.1:PORT) for inbound federation."""
    server_name_suffix: str = ""
    """Appended to the base32 server names this node hands out and accepts (e.g. ``.p2p``)."""
    gateway_max_streams: int = 256
    """Inbound federation streams served at once; more are refused."""
    gateway_idle_timeout: float = 120.0
    """Seconds a gateway connection may sit with no bytes either way before it is closed."""
    relays: tuple[str, ...] = ()
    """Relays (hex keys) this node keeps mailboxes on, and forwards its own deposits through."""
    relay_enable: bool = False
    """Serve as a relay: keep sealed envelopes for other nodes' mailboxes."""
    relay_store: str = ""
    """sqlite:///path or postgresql://...; default sqlite in the data directory."""
    relay_max_expiry: float = 7 * 86400.0
    """The longest a mailbox or an envelope is kept, in seconds."""
    relay_mailbox_max_count: int = 10_000
    relay_mailbox_max_bytes: int = 256 << 20
    relay_fetch_interval: float = 60.0
    """How often this node fetches its own mailboxes while online (and always at start)."""
    relay_direct: bool = False
    """Deposit straight to a recipient's relay when no relay of our own can forward it
    (that relay then sees both our key and the mailbox)."""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

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
    def admin_address(self) -> tuple[str, int]:
        return parse_host_port(self.admin, "admin")

    @property
    def relay_store_url(self) -> str:
        return self.relay_store or f"sqlite:///{self.data_path / 'relay' / 'store.db'}"

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


def _as_bool(value: object, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{where}: expected true or false, got {value!r}")


def _as_int(low: int, high: int) -> Callable[[object, str], int]:
    def convert(value: object, where: str) -> int:
        try:
            number = int(value) if isinstance(value, int | str) and not isinstance(value, bool) else None
        except ValueError:
            number = None
        if number is None or not low <= number <= high:
            raise ConfigError(f"{where}: expected a whole number from {low} to {high}, got {value!r}")
        return number

    return convert


def _as_float(low: float, high: float) -> Callable[[object, str], float]:
    def convert(value: object, where: str) -> float:
        try:
            number = (
                float(value) if isinstance(value, int | float | str) and not isinstance(value, bool) else None
            )
        except ValueError:
            number = None
        if number is None or not low <= number <= high:
            raise ConfigError(f"{where}: expected a number from {low} to {high}, got {value!r}")
        return number

    return convert


def _as_str_list(value: object, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{where}: expected a list of strings, got {value!r}")


def _as_key_list(value: object, where: str) -> tuple[str, ...]:
    keys = _as_str_list(value, where)
    for key in keys:
        if len(key) != 64 or any(c not in "0123456789abcdefABCDEF" for c in key):
            raise ConfigError(f"{where}: {key!r} is not a 64-character hex key")
    return tuple(k.lower() for k in keys)


def _as_choice(*choices: str) -> Callable[[object, str], str]:
    def convert(value: object, where: str) -> str:
        if not isinstance(value, str) or value.lower() not in choices:
            raise ConfigError(f"{where}: expected one of {', '.join(choices)}, got {value!r}")
        return value.lower()

    return convert


def _as_str(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


CONVERTERS: dict[str, Callable[[object, str], Any]] = {
    "listen": _as_str_list,
    "peers": _as_str_list,
    "admin": _as_str,
    "data_dir": _as_str,
    "key_file": _as_str,
    "uvloop": _as_bool,
    "log_format": _as_choice("auto", "console", "json"),
    "log_level": _as_choice("debug", "info", "warning", "error"),
    "max_peers": _as_int(1, 253),
    "traffic_queue_frames": _as_int(16, 1_000_000),
    "hop_limiting": _as_bool,
    "wakeup_broadcasts": _as_bool,
    "handshake_timeout": _as_float(0.1, 600.0),
    "handshakes_per_minute": _as_int(1, 1_000_000),
    "admin_allow_remote": _as_bool,
    "allow_keys": _as_key_list,
    "lan_discovery": _as_bool,
    "lan_interfaces": _as_str_list,
    "session_timeout": _as_float(0.5, 600.0),
    "gateway_listen": _as_str,
    "homeserver": _as_str,
    "server_name_suffix": _as_str,
    "gateway_max_streams": _as_int(1, 100_000),
    "gateway_idle_timeout": _as_float(1.0, 86_400.0),
    "relays": _as_key_list,
    "relay_enable": _as_bool,
    "relay_store": _as_str,
    "relay_max_expiry": _as_float(60.0, 365 * 86_400.0),
    "relay_mailbox_max_count": _as_int(1, 10_000_000),
    "relay_mailbox_max_bytes": _as_int(1 << 20, 1 << 40),
    "relay_fetch_interval": _as_float(0.2, 86_400.0),
    "relay_direct": _as_bool,
}
SETTINGS = tuple(f.name for f in fields(NodeConfig) if f.name != "extra")


def env_name(setting: str) -> str:
    return ENV_PREFIX + setting.upper()


def load_config(
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, object] | None = None,
) -> NodeConfig:
    """Merge defaults, the TOML file, the environment and flags; validate everything."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"config file {path}: {exc.strerror}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
        for key, value in data.items():
            name = key.replace("-", "_")
            if name not in CONVERTERS:
                raise ConfigError(f"{path}: unknown setting {key!r}")
            values[name] = CONVERTERS[name](value, f"{key} (in {path})")
    env = os.environ if environ is None else environ
    for name in SETTINGS:
        if (raw := env.get(env_name(name))) is not None and raw != "":
            values[name] = CONVERTERS[name](raw, f"{name} (from ${env_name(name)})")
    for name, value in (flags or {}).items():
        if value is not None:
            values[name] = CONVERTERS[name](value, f"--{name.replace('_', '-')}")
    config = NodeConfig(**values)
    config.listen_uris()
    config.peer_uris()
    _check_gateway(config)
    _check_relay(config)
    host, _ = config.admin_address
    if not config.admin_allow_remote and not _is_loopback(host):
        raise ConfigError(
            f"admin: {config.admin!r} is not a loopback address; the admin API has no authentication "
            "(set admin_allow_remote = true to expose it anyway)"
        )
    return config


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
    if config.homeserver:
        config.homeserver_address  # noqa: B018 - validates
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
