"""The command line's habits: help for every flag, where settings came from, no key made unasked."""

from __future__ import annotations

import argparse
import socket
import threading
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


@pytest.mark.parametrize(
    "argv",
    [
        ["peer", "add", "tcp://192.0.2.1:1", "--wait", "nan"],
        ["peer", "add", "tcp://192.0.2.1:1", "--wait", "-1"],
        ["status", "--watch", "inf"],
        ["status", "--watch", "0"],
        ["ping", "ab", "-i", "-1"],
        ["ping", "ab", "-W", "0"],
        ["ping", "ab", "-c", "-3"],
    ],
)
def test_bad_numbers_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--admin", "127.0.0.1:1"])
    assert exited.value.code == 2
    assert "give" in capsys.readouterr().err


def test_a_service_that_is_not_the_admin_api_is_named_not_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def answer() -> None:
            connection, _ = server.accept()
            with connection:
                connection.recv(4096)
                connection.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")

        thread = threading.Thread(target=answer)
        thread.start()
        assert main(["status", "--admin", f"127.0.0.1:{port}"]) == 1
        thread.join()
    assert "is not a Pinewood admin API" in capsys.readouterr().err
