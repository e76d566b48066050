"""The settings table (router/daemon/settings.py) against everything made from it:
NodeConfig, the TOML keys, the environment variables, the flags of ``pinewood run``
and the reference in docs/settings.md."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from router.daemon.cli import build_parser, main
from router.daemon.config import NodeConfig, load_config
from router.daemon.settings import (
    BY_NAME,
    REFERENCE_PATH,
    SETTINGS,
    Kind,
    Setting,
    flag_values,
    reference,
    toml_value,
)
from router.daemon.settings import main as print_reference
from tests.conftest import REPO_ROOT

REGENERATE = f".venv/bin/python -m router.daemon.settings > {REFERENCE_PATH}"

STRING_SAMPLES: dict[str, str] = {
    "admin": "127.0.0.1:1",
    "data_dir": "/srv/pinewood",
    "key_file": "/srv/pinewood/other.key",
    "gateway_listen": "127.0.0.1:2",
    "gateway_ca_export": "/run/pinewood/gateway-ca.pem",
    "homeserver": "http://127.0.0.1:3",
    "server_name_suffix": ".p2p",
    "relay_store": "sqlite:///srv/relay.db",
}
"""A value other than the default for each free-text setting; other kinds get one
from their type (:func:`sample`)."""
STRINGS_SAMPLES: dict[str, tuple[str, ...]] = {
    "gateway_federation_paths": ("/_matrix/federation/", "/_matrix/client/v3/profile/"),
    "routing_extensions": ("path-repair",),
}


def sample(setting: Setting) -> object:
    """A valid value of ``setting`` other than its default."""
    value_type = setting.type
    match value_type.kind:
        case Kind.BOOL:
            return not setting.default
        case Kind.INT:
            low = int(value_type.low)
            return low if low != setting.default else low + 1
        case Kind.FLOAT:
            return float(value_type.high)
        case Kind.CHOICE:
            return next(c for c in value_type.choices if c != setting.default)
        case Kind.STRINGS:
            return STRINGS_SAMPLES.get(setting.name, ("tcp://127.0.0.1:4", "tcp://127.0.0.1:5"))
        case Kind.KEYS:
            return ("ab" * 32, "cd" * 32)
        case _:
            return STRING_SAMPLES[setting.name]


def env_text(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(value)
    return toml_value(value).strip('"')


def flag_args(setting: Setting, value: object) -> list[str]:
    if isinstance(value, bool):
        return [setting.flag_name if value else f"--no-{setting.flag_name[2:]}"]
    if isinstance(value, tuple):
        if setting.repeat:
            return [f"{setting.flag_name}={item}" for item in value]
        return [f"{setting.flag_name}={','.join(value)}"]
    return [f"{setting.flag_name}={env_text(value)}"]


def from_flags(*argv: str) -> NodeConfig:
    args = build_parser().parse_args(["run", *argv])
    return load_config(environ={}, flags=flag_values(args))


def test_table_and_node_config_agree() -> None:
    assert [f.name for f in fields(NodeConfig)] == [s.name for s in SETTINGS]
    defaults = NodeConfig()
    for setting in SETTINGS:
        value = getattr(defaults, setting.name)
        assert value == setting.default, setting.name
        assert type(value) is type(setting.default), setting.name  # 10.0, not 10


def test_names_flags_and_help() -> None:
    for attribute in ("name", "env", "flag_name"):
        assert len({getattr(s, attribute) for s in SETTINGS}) == len(SETTINGS), attribute
    for setting in SETTINGS:
        assert setting.help and setting.help[0].islower() and not setting.help.endswith("."), setting.name
        if setting.type.kind not in (Kind.BOOL, Kind.CHOICE):
            assert setting.metavar, f"{setting.name} needs a metavar for its flag"
        if setting.repeat:
            assert setting.type.kind in (Kind.STRINGS, Kind.KEYS), setting.name


def test_run_help_shows_every_setting(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "1000")  # no wrapping, so each help text is on one line
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    for setting in SETTINGS:
        assert setting.flag_name in text
        assert setting.help in text, setting.name


def test_defaults_load_as_themselves_from_every_source(tmp_path: Path) -> None:
    path = tmp_path / "defaults.toml"
    path.write_text("".join(f"{s.name} = {toml_value(s.default)}\n" for s in SETTINGS))
    assert load_config(path, environ={}) == NodeConfig()
    assert load_config(environ={s.env: env_text(s.default) for s in SETTINGS}) == NodeConfig()
    argv = [arg for s in SETTINGS for arg in flag_args(s, s.default)]
    assert from_flags(*argv) == NodeConfig()


@pytest.mark.parametrize("name", [s.name for s in SETTINGS])
def test_every_source_sets_every_setting(tmp_path: Path, name: str) -> None:
    setting = BY_NAME[name]
    value = sample(setting)
    assert value != setting.default
    path = tmp_path / "c.toml"
    path.write_text(f"{name} = {toml_value(value)}\n")
    assert getattr(load_config(path, environ={}), name) == value
    assert getattr(load_config(environ={setting.env: env_text(value)}), name) == value
    assert getattr(from_flags(*flag_args(setting, value)), name) == value
    args = build_parser().parse_args(["run", *flag_args(setting, value)])
    overridden = load_config(path, environ={setting.env: env_text(setting.default)}, flags=flag_values(args))
    assert getattr(overridden, name) == value


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--max-peers", "999"], "--max-peers"),
        (["--relay-fetch-interval", "0"], "--relay-fetch-interval"),
        (["--allow-keys", "beef"], "--allow-keys"),
        (["--peer", "host-without-port"], "peers"),
    ],
)
def test_bad_flags_name_the_flag(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", *argv]) == 2
    assert message in capsys.readouterr().err


def test_repeated_list_flags_may_also_be_comma_separated() -> None:
    config = from_flags("--peer=tcp://127.0.0.1:1,tcp://127.0.0.1:2", "--peer=tcp://127.0.0.1:3")
    assert config.peers == ("tcp://127.0.0.1:1", "tcp://127.0.0.1:2", "tcp://127.0.0.1:3")


def test_reference_is_up_to_date() -> None:
    path = REPO_ROOT / REFERENCE_PATH
    written = path.read_text(encoding="utf-8") if path.exists() else ""
    assert written == reference(), (
        f"{REFERENCE_PATH} is out of date with the table in router/daemon/settings.py; "
        f"regenerate it with: {REGENERATE}"
    )


def test_the_module_prints_the_reference(capsys: pytest.CaptureFixture[str]) -> None:
    print_reference()
    assert capsys.readouterr().out == reference()
