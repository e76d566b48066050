"""The build a run expects is the one it has: ``PINEWOOD_EXPECT_BUILD`` is
``compiled`` for the suite run on the mypyc build, ``pure`` for the core tests run
on the sources alone (both set by the Makefile)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path

import pytest

from router.daemon.build import PROBE, is_compiled, stale_extensions

ROOT = Path(__file__).resolve().parents[3]


def _setup_sources() -> list[str]:
    spec = importlib.util.spec_from_file_location("pinewood_setup", ROOT / "setup.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sources: list[str] = module.compiled_sources()
    return sources


def test_the_run_has_the_build_it_expects() -> None:
    expected = os.environ.get("PINEWOOD_EXPECT_BUILD")
    if expected is None:
        pytest.skip("PINEWOOD_EXPECT_BUILD is not set (make sets it)")
    modules = [s.removesuffix(".py").replace("/", ".") for s in _setup_sources()]
    compiled = {m: is_compiled(m) for m in modules}
    if expected == "compiled":
        assert all(compiled.values()), [m for m, c in compiled.items() if not c]
    else:
        assert not any(compiled.values()), [m for m, c in compiled.items() if c]
        assert PROBE in sys.modules or importlib.util.find_spec(PROBE) is not None


def test_the_compiled_set_is_the_hot_path_and_leaves_the_state_machine_interpreted() -> None:
    sources = _setup_sources()
    assert "router/wire/frames.py" in sources and "router/routing/traffic.py" in sources
    assert "router/routing/core.py" not in sources and "router/routing/tree_state.py" not in sources


def test_an_extension_older_than_its_source_is_named(tmp_path: Path) -> None:
    package = tmp_path / "router"
    package.mkdir()
    source = package / "m.py"
    extension = package / f"m{importlib.machinery.EXTENSION_SUFFIXES[0]}"
    source.write_text("")
    extension.write_bytes(b"")
    os.utime(extension, (1_000_000, 1_000_000))  # built long before the source was edited
    assert stale_extensions(tmp_path) == ["router/m.py"]
    os.utime(extension, None)  # rebuilt: newer than the source
    assert stale_extensions(tmp_path) == []
