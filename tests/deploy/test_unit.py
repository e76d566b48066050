"""deploy/pinewood.service: systemd accepts it, and it agrees with the install
steps of deploy/README.md and with the Containerfile."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

UNIT = REPO_ROOT / "deploy" / "pinewood.service"
README = REPO_ROOT / "deploy" / "README.md"
CONTAINERFILE = REPO_ROOT / "deploy" / "Containerfile"
REQUIRE_ENV = "PINEWOOD_REQUIRE_INTEROP"
"""Set (as CI does) to fail, not skip, where systemd-analyze is missing."""
INSTALLED_PINEWOOD = "/opt/pinewood/.venv/bin/pinewood"
CONFIG = "/etc/pinewood/pinewood.toml"
CA_EXPORT = "/run/pinewood/gateway-ca.pem"


def unit_entries(text: str) -> dict[tuple[str, str], list[str]]:
    """Every (section, key) of a unit file with its values in order (a key may repeat)."""
    entries: dict[tuple[str, str], list[str]] = defaultdict(list)
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        entries[section, key.strip()].append(value.strip())
    return entries


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze") or (
        "/usr/bin/systemd-analyze" if Path("/usr/bin/systemd-analyze").exists() else None
    )
    if analyze is None:
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"systemd-analyze is not installed (and ${REQUIRE_ENV} forbids skipping)")
        pytest.skip("systemd-analyze is not installed (Debian's systemd package has it)")
    # verify refuses a unit whose ExecStart= program does not exist, and
    # /opt/pinewood/.venv is not here: the copy runs this test's Python instead,
    # with the unit's arguments.  Everything else is the unit as shipped.
    text = UNIT.read_text()
    assert f"ExecStart={INSTALLED_PINEWOOD} " in text
    copy = tmp_path / "pinewood.service"
    copy.write_text(text.replace(f"ExecStart={INSTALLED_PINEWOOD} ", f"ExecStart={sys.executable} "))
    done = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    # Unknown or misspelt keys are only warnings: refuse them too.
    complaints = [line for line in output.splitlines() if "pinewood.service" in line]
    assert not complaints, output


def test_the_unit_runs_what_the_readme_installs_and_exports_the_ca() -> None:
    entries = unit_entries(UNIT.read_text())
    (exec_start,) = entries["Service", "ExecStart"]
    assert exec_start == f"{INSTALLED_PINEWOOD} run --config {CONFIG}"
    assert entries["Service", "RuntimeDirectory"] == ["pinewood"]
    assert entries["Service", "RuntimeDirectoryMode"] == ["0755"]
    assert entries["Service", "StateDirectoryMode"] == ["0700"]
    assert f"PINEWOOD_GATEWAY_CA_EXPORT={CA_EXPORT}" in entries["Service", "Environment"]
    readme = README.read_text()
    steps = [
        "python3 -m venv /opt/pinewood/.venv",
        "/opt/pinewood/.venv/bin/pip install .",
        f"install -m 0644 deploy/pinewood.toml {CONFIG}",
        "install -m 0644 deploy/pinewood.service /etc/systemd/system/pinewood.service",
        "systemctl enable --now pinewood.service",
    ]
    places = [readme.find(step) for step in steps]
    assert -1 not in places and places == sorted(places), dict(zip(steps, places, strict=True))


def test_the_documentation_the_unit_names_is_what_the_readme_installs() -> None:
    documents = unit_entries(UNIT.read_text())["Unit", "Documentation"]
    assert documents and not any("pinecone" in d for d in documents), documents
    install = re.search(r"^\s*install -m 0644 (.+) /opt/pinewood/doc/$", README.read_text(), re.MULTILINE)
    assert install is not None, "no install line for /opt/pinewood/doc/ in deploy/README.md"
    sources = install.group(1).split()
    assert all((REPO_ROOT / source).is_file() for source in sources), sources
    installed = {f"file:///opt/pinewood/doc/{Path(source).name}" for source in sources}
    assert set(documents) <= installed, (documents, installed)


def test_the_container_exports_the_ca_into_a_directory_it_makes_for_it() -> None:
    text = CONTAINERFILE.read_text()
    export = re.search(r"PINEWOOD_GATEWAY_CA_EXPORT=(\S+)", text)
    assert export is not None
    directory = str(Path(export.group(1)).parent)
    assert f"install -d -o pinewood -g pinewood -m 0755 {directory}" in text
