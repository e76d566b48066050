"""The daemon's settings, each described once.

:data:`SETTINGS` has one record per setting: its name, the values it takes, its
default and what it means.  Everything else is made from it: the keys of the TOML
file and the ``PINEWOOD_<NAME>`` environment variables that
:func:`router.daemon.config.load_config` accepts, the flags of ``pinewood run``
(:func:`add_flags`), and the settings reference ``docs/settings.md``, which
``python -m router.daemon.settings`` prints (a test fails when the file is out of
date).  :class:`router.daemon.config.NodeConfig` holds the values; a test checks
that its fields and defaults agree with this table.
"""

from __future__ import annotations

import argparse
import enum
import json
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from router.daemon.errors import DaemonError
from router.gateway.shares import REQUEST_BURST, REQUESTS_PER_S
from router.matrix.federation import DEFAULT_PATHS
from router.wire.extension import EXTENSION_NAMES

DEFAULT_PORT = 65432
DEFAULT_ADMIN = "127.0.0.1:65433"
DEFAULT_EXTENSIONS = tuple(EXTENSION_NAMES)
"""Every routing extension this release knows: they act only between nodes that announce them."""
ENV_PREFIX = "PINEWOOD_"
HEX_KEY_CHARS = 64
REFERENCE_PATH = "docs/settings.md"


class ConfigError(DaemonError, ValueError):
    """A setting has a bad value; the message names it."""


def env_name(setting: str) -> str:
    return ENV_PREFIX + setting.upper()


# ------------------------------------------------------------------ values


class Kind(enum.Enum):
    """What a setting's value is; each kind has one converter (:data:`_CONVERTERS`)."""

    BOOL = enum.auto()
    INT = enum.auto()
    FLOAT = enum.auto()
    STR = enum.auto()
    CHOICE = enum.auto()
    STRINGS = enum.auto()
    KEYS = enum.auto()
    """Node keys: 64 hex characters each, stored in lower case."""


@dataclass(frozen=True, slots=True)
class ValueType:
    """The values a setting accepts.  ``low`` and ``high`` bound numbers (both
    included); ``choices`` lists the words a :attr:`Kind.CHOICE` setting takes."""

    kind: Kind
    low: float = 0
    high: float = 0
    choices: tuple[str, ...] = ()

    def convert(self, value: object, where: str) -> object:
        """``value`` (from TOML, the environment or a flag) as the setting holds it;
        :class:`ConfigError` starting with ``where`` if it is not acceptable."""
        return _CONVERTERS[self.kind](self, value, where)

    def describe(self) -> str:
        match self.kind:
            case Kind.INT | Kind.FLOAT:
                noun = "a whole number" if self.kind is Kind.INT else "a number"
                return f"{noun} from {_number(self.low)} to {_number(self.high)}"
            case Kind.CHOICE:
                return "one of " + ", ".join(self.choices)
            case _:
                return _KIND_TEXT[self.kind]


BOOL = ValueType(Kind.BOOL)
STR = ValueType(Kind.STR)
STRINGS = ValueType(Kind.STRINGS)
KEYS = ValueType(Kind.KEYS)


def whole(low: int, high: int) -> ValueType:
    return ValueType(Kind.INT, low, high)


def number(low: float, high: float) -> ValueType:
    return ValueType(Kind.FLOAT, low, high)


def choice(*choices: str) -> ValueType:
    return ValueType(Kind.CHOICE, choices=choices)


_KIND_TEXT: Mapping[Kind, str] = MappingProxyType(
    {
        Kind.BOOL: "true or false",
        Kind.STR: "a string",
        Kind.STRINGS: "a list of strings",
        Kind.KEYS: "a list of 64-character hex keys",
    }
)


_LISTS = frozenset({Kind.STRINGS, Kind.KEYS})
_FLAG_TYPES: Mapping[Kind, type[int] | type[float]] = MappingProxyType({Kind.INT: int, Kind.FLOAT: float})
"""What argparse makes of a number flag's text before the setting's converter checks its range."""


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _as_bool(_: ValueType, value: object, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{where}: expected true or false, got {value!r}")


def _as_int(vt: ValueType, value: object, where: str) -> int:
    try:
        result = int(value) if isinstance(value, int | str) and not isinstance(value, bool) else None
    except ValueError:
        result = None
    if result is None or not vt.low <= result <= vt.high:
        raise ConfigError(f"{where}: expected a whole number from {vt.low} to {vt.high}, got {value!r}")
    return result


def _as_float(vt: ValueType, value: object, where: str) -> float:
    try:
        result = (
            float(value) if isinstance(value, int | float | str) and not isinstance(value, bool) else None
        )
    except ValueError:
        result = None
    if result is None or not vt.low <= result <= vt.high:
        raise ConfigError(f"{where}: expected a number from {vt.low} to {vt.high}, got {value!r}")
    return result


def _as_str(_: ValueType, value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def _as_choice(vt: ValueType, value: object, where: str) -> str:
    if not isinstance(value, str) or value.lower() not in vt.choices:
        raise ConfigError(f"{where}: expected one of {', '.join(vt.choices)}, got {value!r}")
    return value.lower()


def _as_str_list(_: ValueType, value: object, where: str) -> tuple[str, ...]:
    if isinstance(value, str):  # the environment and flags: comma-separated
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{where}: expected a list of strings, got {value!r}")


def _as_key_list(vt: ValueType, value: object, where: str) -> tuple[str, ...]:
    keys = _as_str_list(vt, value, where)
    for key in keys:
        if len(key) != HEX_KEY_CHARS or any(c not in "0123456789abcdefABCDEF" for c in key):
            raise ConfigError(f"{where}: {key!r} is not a 64-character hex key")
    return tuple(k.lower() for k in keys)


_CONVERTERS: Mapping[Kind, Callable[[ValueType, object, str], object]] = MappingProxyType(
    {
        Kind.BOOL: _as_bool,
        Kind.INT: _as_int,
        Kind.FLOAT: _as_float,
        Kind.STR: _as_str,
        Kind.CHOICE: _as_choice,
        Kind.STRINGS: _as_str_list,
        Kind.KEYS: _as_key_list,
    }
)


# ------------------------------------------------------------------ the table


class Section(enum.Enum):
    """Groups of settings, in ``run --help`` and in the reference."""

    NODE = "Node"
    GATEWAY = "Homeserver gateway"
    RELAY = "Relay"


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting.  ``help`` is a phrase (lower case, no final stop) shown by
    ``run --help`` and in the reference.  ``flag`` overrides the flag's name (made
    from ``name``); ``repeat`` makes a list's flag repeatable rather than
    comma-separated; ``default_text`` says in words what the default means where its
    value alone does not (an empty string, a number of seconds)."""

    name: str
    type: ValueType
    default: object
    help: str
    section: Section = Section.NODE
    metavar: str = ""
    flag: str = ""
    repeat: bool = False
    default_text: str = ""

    @property
    def env(self) -> str:
        return env_name(self.name)

    @property
    def flag_name(self) -> str:
        return "--" + (self.flag or self.name.replace("_", "-"))

    def convert(self, value: object, where: str) -> object:
        return self.type.convert(value, where)


# The table is laid out by hand, a setting to a few lines, so that it reads as a table.
# fmt: off
SETTINGS: tuple[Setting, ...] = (
    Setting("listen", STRINGS, (f"tcp://0.0.0.0:{DEFAULT_PORT}",), metavar="URI", repeat=True,
            help="where to accept peerings: tcp://, tls://, quic://, ws:// or wss:// URIs"),
    Setting("peers", STRINGS, (), metavar="URI", flag="peer", repeat=True,
            help="static peers to keep connected: redialled within a second for 15 s after "
                 "they are configured and for 30 s after a peering is lost, else with backoff "
                 "from 5 s up to 1 h; "
                 "a URI ending in ?key=HEX pins the key the peer must prove"),
    Setting("admin", STR, DEFAULT_ADMIN, metavar="HOST:PORT",
            help="address of the admin API and Prometheus metrics; it has no authentication, "
                 "so it must be loopback unless admin_allow_remote is set"),
    Setting("data_dir", STR, "", metavar="DIR",
            default_text="$XDG_DATA_HOME/pinewood, else ~/.local/share/pinewood",
            help="data directory: the key file, and the relay store unless relay_store names another"),
    Setting("key_file", STR, "", metavar="FILE", default_text="DATA_DIR/node.key",
            help="the node's private key file, created with mode 0600 on first run; "
                 "a hex seed in $PINEWOOD_SEED takes precedence"),
    Setting("uvloop", BOOL, True,
            help="run on uvloop rather than asyncio's own event loop"),
    Setting("log_format", choice("auto", "console", "json"), "auto",
            help="log lines as console text or JSON; auto writes console text on a terminal, "
                 "JSON otherwise"),
    Setting("log_level", choice("debug", "info", "warning", "error"), "info",
            help="the least severe level logged"),
    Setting("max_peers", whole(1, 253), 64, metavar="N",
            help="peerings at most; a slot is kept free for every configured static peer"),
    Setting("traffic_queue_frames", whole(16, 1_000_000), 2048, metavar="N",
            help="traffic frames queued per peer from one source node before the oldest is dropped"),
    Setting("queue_target_ms", number(1.0, 1000.0), 5.0, metavar="MS",
            help="the wait in a peer's queue past which a source that stays above it for 100 ms "
                 "starts losing frames (CoDel's target)"),
    Setting("peer_receive_buffer", whole(0, 64 * 1024 * 1024), 131072, metavar="BYTES",
            help="the kernel's receive buffer of a TCP, TLS or WebSocket peering; small keeps "
                 "traffic waiting in the sender's fair queues, but bounds a peering to about one "
                 "buffer per round trip; 0 leaves it to the kernel's autotuning"),
    Setting("peer_send_buffer", whole(0, 64 * 1024 * 1024), 65536, metavar="BYTES",
            help="where the kernel's send buffer of a TCP, TLS or WebSocket peering starts, and the "
                 "least it keeps as it follows the path (the delivery rate times the least round "
                 "trip, set about once a second while the peering sends): what a slower "
                 "receiver holds unread waits here, first in, first out; 0 leaves it to the "
                 "kernel's autotuning"),
    Setting("hop_limiting", BOOL, False,
            help="count down the hop limit of forwarded traffic and drop frames that reach zero"),
    Setting("wakeup_broadcasts", BOOL, True,
            help="send a wakeup broadcast every minute and flood other nodes' broadcasts on, "
                 "as the reference does"),
    Setting("routing_extensions", STRINGS, DEFAULT_EXTENSIONS, metavar="NAMES",
            default_text=", ".join(DEFAULT_EXTENSIONS),
            help="routing beyond the reference, used only on peerings whose other end announced it too "
                 "(Go nodes announce none and see nothing new): path-repair reports a broken bootstrap "
                 "path to the nodes along it, so that its origin repairs it at once; lookahead routes "
                 "over the coordinates of peers' peers too, for shorter paths; one-peering keeps one "
                 "of two peerings two nodes dialled to each other at once, the one the lower key "
                 "dialled; quiet-paths (with path-repair) refreshes a bootstrap path that is Pinewood's "
                 "end to end every 30 s instead of every 5; [] turns them off"),
    Setting("handshake_timeout", number(0.1, 600.0), 10.0, metavar="SECONDS",
            help="seconds a new peering has to complete its handshake"),
    Setting("handshakes_per_minute", whole(1, 1_000_000), 120, metavar="N",
            help="failed, timed-out or refused inbound handshakes a source network (/24, /64) may "
                 "cause in a minute; past that, only keys the node knows get in from it"),
    Setting("quic_engine", choice("qh3", "aioquic"), "qh3",
            help="the QUIC library of quic:// peerings: qh3 (native packet engine, the faster) or "
                 "aioquic; nodes on either peer with each other, and sessions always use aioquic"),
    Setting("lan_discovery", BOOL, True,
            help="send and hear the reference's LAN discovery beacons on the interfaces in "
                 "lan_interfaces, and dial the nodes heard"),
    Setting("lan_interfaces", STRINGS, (), metavar="NAMES",
            help="network interfaces LAN discovery runs on; it runs on none unless they are named"),
    Setting("allow_keys", KEYS, (), metavar="KEYS", default_text="any key",
            help="if not empty, the only keys (hex) that may peer with this node inbound"),
    Setting("admin_allow_remote", BOOL, False,
            help="let the admin API bind to an address other than loopback, though it has no authentication"),

    Setting("session_timeout", number(0.5, 600.0), 10.0, section=Section.GATEWAY, metavar="SECONDS",
            help="seconds to wait for an end-to-end session with another node before giving up"),
    Setting("gateway_listen", STR, "", section=Section.GATEWAY, metavar="HOST:PORT", default_text="off",
            help="loopback host:port of the federation proxy (HTTP CONNECT, SOCKS5) the homeserver uses"),
    Setting("gateway_ca_export", STR, "", section=Section.GATEWAY, metavar="FILE",
            default_text="no copy; the CA's own file is DATA_DIR/gateway/gateway-ca.pem",
            help="a copy of the gateway's CA certificate for a homeserver that runs as another user, "
                 "written at every start while gateway_listen is set, with mode 0644 (its directory "
                 "made 0755 if missing); the CA's key stays in DATA_DIR/gateway, for the node's user only"),
    Setting("homeserver", STR, "", section=Section.GATEWAY, metavar="URL", default_text="off",
            help="the homeserver's plain-HTTP federation listener, http://127.0.0.1:PORT, "
                 "where inbound federation goes"),
    Setting("server_name_suffix", STR, "", section=Section.GATEWAY, metavar="SUFFIX", default_text="none",
            help="appended to the base32 server names this node hands out and accepts, e.g. .p2p"),
    Setting("gateway_max_streams", whole(1, 100_000), 256, section=Section.GATEWAY, metavar="N",
            help="inbound federation streams served at once; more are refused"),
    Setting("gateway_idle_timeout", number(1.0, 86_400.0), 120.0, section=Section.GATEWAY, metavar="SECONDS",
            help="seconds a gateway connection may sit with no bytes either way before it is closed"),
    Setting("gateway_max_streams_per_peer", whole(0, 100_000), 0, section=Section.GATEWAY, metavar="N",
            default_text="a quarter of gateway_max_streams",
            help="inbound federation streams one node may hold open at once, at most gateway_max_streams; "
                 "0 for a quarter of gateway_max_streams (at least 1)"),
    Setting("gateway_requests_per_second", number(0.1, 100_000.0), REQUESTS_PER_S, section=Section.GATEWAY,
            metavar="N",
            help="inbound federation requests one node may send each second, on average; past that "
                 "it is answered 429 with Retry-After"),
    Setting("gateway_request_burst", number(1.0, 1_000_000.0), REQUEST_BURST, section=Section.GATEWAY,
            metavar="N",
            help="inbound federation requests one node may send at once before "
                 "gateway_requests_per_second holds it"),
    Setting("gateway_federation_paths", STRINGS, DEFAULT_PATHS, section=Section.GATEWAY, metavar="PREFIXES",
            default_text="the server-server API: " + ", ".join(DEFAULT_PATHS),
            help="path prefixes inbound requests may have to reach the homeserver; others are answered "
                 "404. WARNING: every node of the overlay can send requests; a prefix added here "
                 "(the client API, an admin API) is open to all of them"),

    Setting("relays", KEYS, (), section=Section.RELAY, metavar="KEYS",
            help="relays (hex keys) this node keeps mailboxes on, and forwards its own deposits through"),
    Setting("relay_enable", BOOL, False, section=Section.RELAY,
            help="serve as a relay: keep sealed envelopes for other nodes' mailboxes"),
    Setting("relay_store", STR, "", section=Section.RELAY, metavar="URL",
            default_text="sqlite:///DATA_DIR/relay/store.db",
            help="where a serving relay keeps envelopes: sqlite:///path, or postgresql://user@host/db "
                 "for several relay processes sharing one database"),
    Setting("relay_max_expiry", number(60.0, 365 * 86_400.0), 7 * 86_400.0, section=Section.RELAY,
            metavar="SECONDS", default_text="7 days",
            help="seconds a mailbox or an envelope is kept at most"),
    Setting("relay_mailbox_max_count", whole(1, 10_000_000), 10_000, section=Section.RELAY, metavar="N",
            help="envelopes one mailbox may hold"),
    Setting("relay_mailbox_max_bytes", whole(1 << 20, 1 << 40), 256 << 20, section=Section.RELAY,
            metavar="BYTES", default_text="256 MiB",
            help="bytes one mailbox may hold"),
    Setting("relay_requests_per_second", number(1.0, 1_000_000.0), 2000.0, section=Section.RELAY,
            metavar="N",
            help="relay requests one node may make each second, on average; past that it is "
                 "answered rate-limited"),
    Setting("relay_request_burst", number(1.0, 10_000_000.0), 4000.0, section=Section.RELAY, metavar="N",
            help="relay requests one node may make at once before relay_requests_per_second holds it"),
    Setting("relay_fetch_interval", number(0.2, 86_400.0), 60.0, section=Section.RELAY, metavar="SECONDS",
            help="seconds between fetches of this node's own mailboxes while online; "
                 "it also fetches them at start"),
    Setting("relay_direct", BOOL, False, section=Section.RELAY,
            help="deposit straight to a recipient's relay when no relay of this node's own can "
                 "forward it; that relay then sees both this node's key and the mailbox"),
)
# fmt: on
BY_NAME: Mapping[str, Setting] = MappingProxyType({s.name: s for s in SETTINGS})


# ------------------------------------------------------------------ flags


def add_flags(parser: argparse.ArgumentParser, names: Iterable[str] | None = None) -> None:
    """Add a flag for each setting (or for those in ``names``), grouped by section.
    A flag not given is ``None``, so that the environment and the file apply."""
    chosen = SETTINGS if names is None else tuple(BY_NAME[n] for n in names)
    for section in Section:
        in_section = [s for s in chosen if s.section is section]
        if in_section:
            group = parser.add_argument_group(f"{section.value.lower()} settings")
            for setting in in_section:
                group.add_argument(setting.flag_name, **_flag_options(setting))


def _flag_options(setting: Setting) -> dict[str, Any]:
    """Keyword arguments of ``add_argument`` for ``setting``'s flag."""
    options: dict[str, Any] = {"dest": setting.name, "default": None}
    kind = setting.type.kind
    if kind is Kind.BOOL:
        options["action"] = argparse.BooleanOptionalAction
    elif kind is Kind.CHOICE:
        options["choices"] = setting.type.choices
    else:
        options["metavar"] = setting.metavar
        options["type"] = _FLAG_TYPES.get(kind, str)
        if setting.repeat:
            options["action"] = "append"
    notes = ["repeatable" if setting.repeat else "comma-separated"] if kind in _LISTS else []
    notes.append(f"default: {_plain_default(setting)}")
    options["help"] = f"{setting.help} ({'; '.join(notes)})".replace("%", "%%")
    return options


def flag_values(args: argparse.Namespace) -> dict[str, object]:
    """The settings' values in ``args`` (``None`` for a flag not given), for ``load_config``."""
    values: dict[str, object] = {}
    for setting in SETTINGS:
        value = getattr(args, setting.name, None)
        if isinstance(value, list):  # a repeated flag; each may itself be a comma-separated list
            value = ",".join(value)
        values[setting.name] = value
    return values


# ------------------------------------------------------------------ the reference


def toml_value(value: object) -> str:
    """``value`` written as in the TOML file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string, for the ASCII the defaults use
    return repr(value)


def _plain_default(setting: Setting) -> str:
    if setting.default_text:
        return setting.default_text
    value = setting.default
    if isinstance(value, tuple):
        return ", ".join(value) or "none"
    return toml_value(value).strip('"')


def _flag_usage(setting: Setting) -> str:
    if setting.type.kind is Kind.BOOL:
        return f"`{setting.flag_name}`, `--no-{setting.flag_name[2:]}`"
    if setting.type.kind is Kind.CHOICE:
        return f"`{setting.flag_name} {{{','.join(setting.type.choices)}}}`"
    usage = f"`{setting.flag_name} {setting.metavar}`"
    if setting.type.kind in _LISTS:
        usage += " (repeatable)" if setting.repeat else " (comma-separated)"
    return usage


def _row(setting: Setting) -> str:
    default = f"`{toml_value(setting.default)}`"
    if setting.default_text:
        default += f": {setting.default_text}"
    meaning = setting.help[0].upper() + setting.help[1:] + "."
    if setting.type.kind is not Kind.STR:
        meaning += f" Value: {setting.type.describe()}."
    cells = (f"`{setting.name}`", _flag_usage(setting), f"`{setting.env}`", default, meaning)
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


_PREAMBLE = f"""\
# Settings

<!-- Made from router/daemon/settings.py by `python -m router.daemon.settings > {REFERENCE_PATH}`;
     edit the table there, not this file. -->

Every setting of `pinewood run` can be given in four ways; the first of these that
sets it wins:

1. a flag of `pinewood run` (`--max-peers 32`);
2. an environment variable, `{ENV_PREFIX}` and the setting's name in capitals
   (`{ENV_PREFIX}MAX_PEERS=32`); an empty variable counts as unset;
3. the setting's name as a key of the TOML file named by `--config` (`max_peers = 32`;
   hyphens may stand for underscores), as in `deploy/pinewood.toml`;
4. the default.

In the environment, lists are comma-separated, and true or false may also be written
`1`/`0`, `yes`/`no` or `on`/`off`.  Each true-or-false setting has a pair of flags
(`--uvloop`, `--no-uvloop`); a list's flag either repeats or takes a comma-separated
list, as the table says.  A bad value is refused with the setting's name and where
the value came from.
"""


def reference() -> str:
    """The settings reference, Markdown: one table per section."""
    parts = [_PREAMBLE]
    for section in Section:
        rows = [_row(s) for s in SETTINGS if s.section is section]
        header = "| Setting | Flag | Environment variable | Default | Meaning |\n|---|---|---|---|---|"
        parts.append(f"## {section.value}\n\n{header}\n" + "\n".join(rows) + "\n")
    return "\n".join(parts)


def main() -> None:
    sys.stdout.write(reference())


if __name__ == "__main__":
    main()
