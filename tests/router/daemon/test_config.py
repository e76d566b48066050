from __future__ import annotations

from pathlib import Path

import pytest

from router.daemon.cli import main
from router.daemon.config import DEFAULT_ADMIN, ConfigError, NodeConfig, load_config
from router.wire.extension import Extension
from tests.conftest import REPO_ROOT


def test_defaults_need_no_file() -> None:
    config = load_config(environ={})
    assert config == NodeConfig()
    assert config.admin_address == ("127.0.0.1", int(DEFAULT_ADMIN.rsplit(":", 1)[1]))
    assert [str(u) for u in config.listen_uris()] == ["tcp://0.0.0.0:65432"]


def test_precedence_flag_over_env_over_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('max_peers = 10\nlog_level = "debug"\npeers = ["tcp://10.0.0.1:1"]\n')
    config = load_config(
        path, environ={"PINEWOOD_MAX_PEERS": "20", "PINEWOOD_PEERS": "a:1,b:2"}, flags={"max_peers": 30}
    )
    assert config.max_peers == 30
    assert config.log_level == "debug"
    assert config.peers == ("a:1", "b:2")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_peers = 0", "max_peers"),
        ("max_peers = true", "max_peers"),
        ('log_level = "loud"', "log_level"),
        ('listen = ["udp://x:1"]', "listen"),
        ('peers = ["host-without-port"]', "peers"),
        ('admin = "nowhere"', "admin"),
        ("handshake_timeout = -1", "handshake_timeout"),
        ("colour = 1", "unknown setting 'colour'"),
        ("max_peers = ", "c.toml"),
        ("gateway_max_streams = 8\ngateway_max_streams_per_peer = 9", "one node could take every stream"),
        ('gateway_federation_paths = ["/"]', "gateway_federation_paths: '/' must be a path prefix"),
        ('gateway_federation_paths = ["/_matrix/../_synapse/"]', "gateway_federation_paths"),
        ('gateway_federation_paths = ["/_matrix/client"]', "ending in '/'"),
        ('routing_extensions = ["teleport"]', "unknown extension 'teleport'; known: path-repair, lookahead"),
    ],
)
def test_bad_values_name_the_setting(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError, match=message):
        load_config(path, environ={})


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"PINEWOOD_UVLOOP"):
        load_config(environ={"PINEWOOD_UVLOOP": "perhaps"})


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="config file"):
        load_config(Path("/nonexistent/pinewood.toml"), environ={})


def test_example_config_parses() -> None:
    config = load_config(REPO_ROOT / "deploy" / "pinewood.toml", environ={})
    assert config.data_dir == "/var/lib/pinewood"
    assert config.log_format == "json"


def test_cli_reports_config_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.toml"
    path.write_text("max_peers = 999\n")
    assert main(["run", "--config", str(path)]) == 2
    assert "max_peers" in capsys.readouterr().err


def test_cli_client_without_a_daemon(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--admin", "127.0.0.1:1"]) == 3
    assert "cannot reach the node's admin API at 127.0.0.1:1" in capsys.readouterr().err


@pytest.mark.parametrize("setting", ["verify_signatures", "sign", "signatures", "no_signatures"])
def test_signatures_cannot_be_turned_off_from_the_daemon_config(tmp_path: Path, setting: str) -> None:
    """Skipping ed25519 is a switch of the simulator's cores only, never of a daemon."""
    path = tmp_path / "c.toml"
    path.write_text(f"{setting} = false\n")
    with pytest.raises(ConfigError, match="unknown setting"):
        load_config(path, environ={})
    with pytest.raises(ConfigError, match="unknown setting"):
        load_config(path, environ={f"PINEWOOD_{setting.upper()}": "false"})


def test_file_keys_may_be_written_with_hyphens(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("max-peers = 7\nrelay-enable = true\n")
    config = load_config(path, environ={})
    assert (config.max_peers, config.relay_enable) == (7, True)


def test_an_empty_environment_variable_counts_as_unset() -> None:
    assert load_config(environ={"PINEWOOD_MAX_PEERS": "", "PINEWOOD_LISTEN": ""}) == NodeConfig()


def test_admin_must_be_loopback_unless_allowed() -> None:
    with pytest.raises(ConfigError, match="loopback"):
        load_config(environ={"PINEWOOD_ADMIN": "0.0.0.0:1"})
    config = load_config(environ={"PINEWOOD_ADMIN": "0.0.0.0:1", "PINEWOOD_ADMIN_ALLOW_REMOTE": "true"})
    assert config.admin_address == ("0.0.0.0", 1)


def test_a_node_gets_a_quarter_of_the_gateway_streams_unless_set() -> None:
    assert NodeConfig(gateway_max_streams=256).gateway_streams_per_peer == 64
    assert NodeConfig(gateway_max_streams=2).gateway_streams_per_peer == 1
    assert (
        NodeConfig(gateway_max_streams=256, gateway_max_streams_per_peer=200).gateway_streams_per_peer == 200
    )


def test_routing_extensions_become_the_bits_the_handshake_announces(tmp_path: Path) -> None:
    assert NodeConfig().extension_bits == (
        Extension.PATH_REPAIR | Extension.LOOKAHEAD | Extension.ONE_PEERING | Extension.QUIET_PATHS
    )
    path = tmp_path / "c.toml"
    path.write_text("routing_extensions = []\n")
    assert load_config(path, environ={}).extension_bits == 0
