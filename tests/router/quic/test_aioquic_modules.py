"""A node loads only the aioquic modules it uses: the sessions' connection
without the peering engine, the peering engine without the sessions'
connection, and neither loads qh3.

What a module loads is read from the source: its module-level imports (not
those inside functions or under ``TYPE_CHECKING``), followed through the
project's modules; a library counts by its top-level name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _path(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _type_checking(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _module_level_imports(tree: ast.Module) -> list[str]:
    names: list[str] = []
    statements = list(tree.body)
    while statements:
        node = statements.pop()
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.If | ast.Try) and not _type_checking(node):
            statements += node.body + node.orelse
            statements += [s for handler in getattr(node, "handlers", []) for s in handler.body]
    return names


def loaded_by(module: str) -> set[str]:
    """The project modules importing ``module`` loads, and the libraries (top-level names)."""
    loaded: set[str] = set()
    waiting = [module]
    while waiting:
        name = waiting.pop()
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):
            prefix = ".".join(parts[:depth])
            path = _path(prefix)
            if path is None:
                if depth == 1:
                    loaded.add(prefix)  # a library
                continue
            if prefix not in loaded:
                loaded.add(prefix)
                waiting += _module_level_imports(ast.parse(path.read_text()))
    return loaded


CONNECTION, PEERING = "router.quic.aioquic_connection", "router.quic.aioquic_peering"


@pytest.mark.parametrize(
    ("module", "absent"),
    [
        (CONNECTION, [PEERING, "router.quic.engines", "qh3"]),
        (PEERING, [CONNECTION, "qh3"]),
        ("router.quic.aioquic_hooks", [CONNECTION, PEERING, "qh3"]),
        ("router.sessions.endpoint", [PEERING, "router.quic.engines", "qh3"]),
    ],
    ids=["sessions' connection", "peering engine", "hooks", "sessions' endpoint"],
)
def test_each_aioquic_module_loads_without_the_others(module: str, absent: list[str]) -> None:
    modules = loaded_by(module)
    assert {module, "aioquic"} <= modules
    assert [name for name in absent if name in modules] == []


def test_the_reading_of_imports_follows_the_project() -> None:
    """Not hollow: the peering engine is seen to load the driver and the hooks."""
    modules = loaded_by(PEERING)
    assert {"router.quic.peering", "router.quic.aioquic_hooks", "cryptography"} <= modules
