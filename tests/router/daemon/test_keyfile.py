from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from router.daemon.cli import main
from router.daemon.keyfile import SEED_ENV, KeyFileError, load_key_file, load_or_create_identity
from router.wire import Identity


def test_created_with_mode_0600_and_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "node.key"
    first, source = load_or_create_identity(path, environ={})
    assert source.endswith("(new)")
    assert path.stat().st_mode & 0o777 == 0o600
    again, source = load_or_create_identity(path, environ={})
    assert again.public_key == first.public_key and source == str(path)


def test_refuses_a_key_readable_by_others(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    load_or_create_identity(path, environ={})
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_key_file(path)


def test_environment_seed_wins(tmp_path: Path) -> None:
    identity, _ = load_or_create_identity(tmp_path / "unused", environ={SEED_ENV: "01" * 32})
    assert identity.public_key == Identity.from_seed(b"\x01" * 32).public_key
    assert not (tmp_path / "unused").exists()
    with pytest.raises(KeyFileError, match=SEED_ENV):
        load_or_create_identity(tmp_path / "unused", environ={SEED_ENV: "zz"})
    with pytest.raises(KeyFileError, match="32 bytes"):
        load_or_create_identity(tmp_path / "unused", environ={SEED_ENV: "01" * 31})


def test_keygen_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "k"
    assert main(["keygen", str(path)]) == 0
    key_hex = capsys.readouterr().out.strip()
    assert load_key_file(path).public_key.hex() == key_hex
    assert main(["keygen", str(path)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err


def test_run_prints_identity_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "PINEWOOD_DATA_DIR": str(tmp_path), SEED_ENV: ""}
    process = subprocess.Popen(
        [sys.executable, "-m", "router", "run", "--listen=tcp://127.0.0.1:0", "--admin=127.0.0.1:0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = json.loads(process.stdout.readline())  # not a terminal: JSON lines
        key = (tmp_path / "node.key").read_text().strip()
        assert first["event"] == "pinewood starting"
        assert first["key"] == Identity.from_seed(bytes.fromhex(key)).public_key.hex()
        assert first["key_source"] == f"{tmp_path / 'node.key'} (new)"
        for line in process.stdout:  # the logs: wait until the node is serving
            if "admin API listening" in line:
                break
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        rest = [json.loads(line) for line in process.stdout]
        assert [e["event"] for e in rest][-2:] == ["stopping", "stopped"], rest
        assert not any(e["event"] in ("parent changed", "root changed") for e in rest), rest
    finally:
        if process.poll() is None:
            process.kill()
        if process.stdout is not None:
            process.stdout.close()
