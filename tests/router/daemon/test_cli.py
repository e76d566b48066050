"""The command line's habits: help for every flag, where settings came from, no key made unasked."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from router.daemon.cli import build_parser, main
from router.daemon.keyfile import SEED_ENV, load_key_file


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no commands")


def test_every_flag_and_argument_of_every_command_has_help() -> None:
    parser = build_parser()
    missing = [
        f"{name} {action.option_strings or action.dest}"
        for name, sub in _subparsers(parser).items()
        for action in sub._actions
        if not isinstance(action, argparse._HelpAction) and not action.help
    ]
    assert missing == []


def test_server_name_does_not_make_a_key_unasked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SEED_ENV, raising=False)
    monkeypatch.delenv("PINEWOOD_KEY_FILE", raising=False)
    data = tmp_path / "data"
    assert main(["server-name", f"--data-dir={data}"]) == 1
    err = capsys.readouterr().err
    assert "no node key yet" in err and "--create-key" in err
    assert not (data / "node.key").exists()
    assert main(["server-name", f"--data-dir={data}", "--create-key"]) == 0
    captured = capsys.readouterr()
    assert f"created a new node key in {data / 'node.key'}" in captured.err
    name = captured.out.strip()
    assert len(name) == 52
    assert main(["server-name", f"--data-dir={data}"]) == 0  # the key now there: the same name
    assert capsys.readouterr().out.strip() == name
    assert load_key_file(data / "node.key")


def test_local_config_says_where_each_value_came_from(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "pinewood.toml"
    path.write_text('max_peers = 12\nlog_level = "debug"\n')
    monkeypatch.setenv("PINEWOOD_LOG_LEVEL", "warning")
    assert main(["config", "--local", "--config", str(path)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert lines["max_peers"].endswith(f"# file {path}") and "12" in lines["max_peers"]
    assert (
        lines["log_level"].endswith("# environment $PINEWOOD_LOG_LEVEL") and "warning" in lines["log_level"]
    )
    assert lines["uvloop"].endswith("# default")


def test_watch_needs_a_positive_interval(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--watch", "0", "--admin", "127.0.0.1:1"]) == 2
    assert "--watch" in capsys.readouterr().err
