"""The install that deploy/README.md tells a system administrator to do: a fresh
virtual environment, ``pip install`` of the checkout (not editable, no test
extras), then ``pinewood`` from that environment runs a node and talks to it.

pip fetches the build backend and the dependencies from PyPI.  The checkout is
copied first, without the virtual environment and caches, so that the build
writes nothing into it (setuptools leaves ``build/`` and ``*.egg-info`` in the
tree it builds from)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.deploy.node import clean_environment, running_node

PIP_TIMEOUT_S = 300.0
"""A bound for a hung download, not the expected time (about 20 s with pip's cache)."""
COPY_IGNORED = shutil.ignore_patterns(
    ".git",
    ".venv",
    "__pycache__",
    "*.pyc",
    "*.so",  # the compiled hot path (make): this is the plain install, pure Python
    "*.egg-info",
    "build",
    "dist",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    ".benchmarks",
)
INSTALLED_PACKAGES = ("router", "relay")
"""The packages whose every file an installed copy must hold (bench/ is installed
too, but its results/ are data for the report, not for the program)."""


def run(argv: list[str], cwd: Path, timeout: float = 60.0) -> str:
    """Run ``argv`` in ``cwd`` (never the checkout: ``python -c`` would import from it)."""
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, env=clean_environment(), cwd=cwd, check=False
    )
    assert done.returncode == 0, f"{argv} exited with {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the copy of the checkout that was installed, the virtual environment)."""
    root = tmp_path_factory.mktemp("install")
    source = root / "checkout"
    shutil.copytree(REPO_ROOT, source, ignore=COPY_IGNORED, symlinks=True)
    venv = root / "venv"
    run([sys.executable, "-m", "venv", str(venv)], root)
    run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            str(source),
        ],
        root,
        timeout=PIP_TIMEOUT_S,
    )
    return source, venv


def test_the_install_is_a_copy_with_every_file_of_the_packages(installed: tuple[Path, Path]) -> None:
    source, venv = installed
    where = json.loads(
        run(
            [
                str(venv / "bin" / "python"),
                "-c",
                "import json, router, relay; "
                "print(json.dumps({m.__name__: m.__file__ for m in (router, relay)}))",
            ],
            venv,
        )
    )
    site_packages = Path(where["router"]).parent.parent
    assert site_packages.name == "site-packages" and venv in site_packages.parents, where
    for package in INSTALLED_PACKAGES:
        assert Path(where[package]) == site_packages / package / "__init__.py", where
        wanted = {
            path.relative_to(source)
            for path in (source / package).rglob("*")
            if path.is_file() and "__pycache__" not in path.parts
        }
        missing = sorted(str(p) for p in wanted if not (site_packages / p).is_file())
        assert not missing, f"not installed (package data?): {missing}"


def test_the_installed_pinewood_runs_a_node_and_answers_status(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    _, venv = installed
    pinewood = str(venv / "bin" / "pinewood")
    with running_node([pinewood], tmp_path / "node", env=clean_environment()) as node:
        status = json.loads(run([pinewood, "status", "--admin", node.admin, "--json"], tmp_path))
        assert status["key"] == node.key
    assert (tmp_path / "node" / "node.key").is_file()
