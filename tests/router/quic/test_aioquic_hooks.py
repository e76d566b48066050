"""aioquic's internals are reached from one module only, router/quic/aioquic_hooks.py,
and that module checks at start that the installed aioquic still has every one
it reaches.

Every other module of router/ and relay/ may use aioquic's public API and
nothing private.  The scan below reads their source and refuses:

* an import of a private aioquic module (``aioquic._buffer``) or private name;
* ``something._name`` where ``_name`` is private anywhere in aioquic (the
  receiver's type is not known from the source, so the name decides; ``self``
  and ``cls`` are the module's own objects unless the class derives from aioquic);
* ``getattr``/``hasattr``/``setattr``/``delattr`` with such a name as a string;
* in a class derived from an aioquic class (directly or through a class of
  ours), a method or ``self._name`` with a name that aioquic uses privately:
  that overrides or reads its internals, or clobbers them by accident.

Which names are private in aioquic is read from the installed aioquic's source,
so names a later release adds are covered too.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from pathlib import Path

import aioquic
import pytest
from aioquic.asyncio.server import QuicServer
from aioquic.quic.connection import QuicConnection

from router.quic.aioquic_hooks import REQUIREMENTS, aioquic_version, check_aioquic
from router.quic.errors import QuicEngineError

ROOT = Path(__file__).resolve().parents[3]
SCANNED = ("router", "relay")
ADAPTER = Path("router") / "quic"
"""The one package allowed to reach into aioquic."""
HOOKS = ADAPTER / "aioquic_hooks.py"
"""The one module of that package that reaches into aioquic."""
QH3_ENGINE = ADAPTER / "qh3_engine.py"
"""qh3 is a fork of aioquic: the private names its engine reaches are aioquic's too."""
ATTRIBUTE_FUNCTIONS = {"getattr", "hasattr", "setattr", "delattr"}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


@functools.cache
def aioquic_private_names() -> frozenset[str]:
    """Every private attribute, method, function and class name in aioquic's source."""
    names: set[str] = set()
    for path in Path(aioquic.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and _private(node.attr):
                names.add(node.attr)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and _private(
                node.name
            ):
                names.add(node.name)
    return frozenset(names)


def _module_name(path: Path) -> str:
    parts = path.with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_names(tree: ast.Module) -> dict[str, str]:
    """Local name -> dotted name of what it stands for."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                local = alias.asname or alias.name.partition(".")[0]
                names[local] = alias.name if alias.asname else local
    return names


def _dotted(expr: ast.expr, imported: dict[str, str], module: str) -> str | None:
    if isinstance(expr, ast.Name):
        return imported.get(expr.id, f"{module}.{expr.id}")
    if isinstance(expr, ast.Attribute):
        owner = _dotted(expr.value, imported, module)
        return f"{owner}.{expr.attr}" if owner else None
    return None


class Source:
    """The scanned modules, parsed, and the bases of every class they define."""

    def __init__(self, modules: dict[str, tuple[str, ast.Module]]) -> None:
        self.modules = modules
        self.bases: dict[str, list[str]] = {}
        for module, (_, tree) in modules.items():
            imported = _imported_names(tree)
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    bases = [_dotted(b, imported, module) for b in node.bases]
                    self.bases[f"{module}.{node.name}"] = [b for b in bases if b]

    @classmethod
    def of_project(cls) -> Source:
        modules: dict[str, tuple[str, ast.Module]] = {}
        for top in SCANNED:
            for path in sorted((ROOT / top).rglob("*.py")):
                relative = path.relative_to(ROOT)
                modules[_module_name(relative)] = (str(relative), ast.parse(path.read_text()))
        return cls(modules)

    def derives_from_aioquic(self, name: str, seen: frozenset[str] = frozenset()) -> bool:
        for base in self.bases.get(name, []):
            if base.startswith("aioquic.") or (
                base not in seen and self.derives_from_aioquic(base, seen | {name})
            ):
                return True
        return False

    def private_uses(self, exempt: str = ADAPTER.as_posix()) -> Iterator[str]:
        private = aioquic_private_names()
        for module, (path, tree) in self.modules.items():
            if Path(path).is_relative_to(exempt):
                continue
            for node in ast.walk(tree):
                where = f"{path}:{getattr(node, 'lineno', 0)}"
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aioquic"):
                    assert node.module is not None
                    if any(_private(p) for p in node.module.split(".")):
                        yield f"{where}: imports the private module {node.module}"
                    for alias in node.names:
                        if _private(alias.name):
                            yield f"{where}: imports the private name {node.module}.{alias.name}"
                elif isinstance(node, ast.Import):
                    for alias in node.names:
                        parts = alias.name.split(".")
                        if parts[0] == "aioquic" and any(_private(p) for p in parts):
                            yield f"{where}: imports the private module {alias.name}"
                elif isinstance(node, ast.Attribute) and node.attr in private:
                    if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                        yield f"{where}: reads {ast.unparse(node)}, private in aioquic"
                elif (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Name)
                    and node.func.id in ATTRIBUTE_FUNCTIONS
                    and len(node.args) >= 2
                    and isinstance(node.args[1], ast.Constant)
                    and node.args[1].value in private
                ):
                    yield f"{where}: {node.func.id} of {node.args[1].value!r}, private in aioquic"
                elif isinstance(node, ast.ClassDef) and self.derives_from_aioquic(f"{module}.{node.name}"):
                    yield from self._subclass_uses(node, path, private)

    def _subclass_uses(self, klass: ast.ClassDef, path: str, private: frozenset[str]) -> Iterator[str]:
        for node in ast.walk(klass):
            where = f"{path}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in private:
                yield f"{where}: {klass.name} overrides {node.name}, private in aioquic"
            elif (
                isinstance(node, ast.Attribute)
                and node.attr in private
                and isinstance(node.value, ast.Name)
                and node.value.id in ("self", "cls")
            ):
                yield f"{where}: {klass.name} uses {ast.unparse(node)}, private in aioquic"


def _scan(source: str, module: str = "router.example") -> list[str]:
    return list(Source({module: ("router/example.py", ast.parse(source))}).private_uses())


# ------------------------------------------------------------------ the scan


def test_no_module_outside_the_engine_touches_aioquic_internals() -> None:
    assert list(Source.of_project().private_uses()) == []


def test_the_hooks_are_where_the_internals_are_reached() -> None:
    """The exemption is not hollow: the hooks module is what the scan would
    refuse, and within the QUIC package nothing else of aioquic's is."""
    uses = list(Source.of_project().private_uses(exempt="nowhere"))
    assert any(use.startswith(f"{HOOKS.as_posix()}:") for use in uses)
    allowed = (f"{HOOKS.as_posix()}:", f"{QH3_ENGINE.as_posix()}:")
    outside = [use for use in uses if not use.startswith(allowed)]
    assert outside == []


def _reached_by_the_hooks() -> set[str]:
    """The private aioquic names the hooks module reads, writes or overrides
    (an import of a private module needs no check: it fails on import)."""
    tree = ast.parse((ROOT / HOOKS).read_text())
    private = aioquic_private_names()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            names.add(node.attr)  # read or written
        elif isinstance(node, ast.FunctionDef):
            names.add(node.name)  # overridden
    return names & private


def test_every_internal_the_hooks_reach_is_checked_at_start() -> None:
    """The names check_aioquic looks for are noted by the hooks that rely on
    them; and every private aioquic name the hooks module reaches is among them."""
    checked = {part for name in REQUIREMENTS.names() for part in re.findall(r"(?<!\w)_\w+", name)}
    reached = _reached_by_the_hooks()
    assert "_write_stream_limits" in reached and "_streams" in reached
    assert sorted(reached - checked) == []


@pytest.mark.parametrize(
    ("code", "found"),
    [
        ("from aioquic._buffer import Buffer", "private module aioquic._buffer"),
        ("import aioquic._buffer", "private module aioquic._buffer"),
        ("from aioquic.quic.connection import _open", "private name"),
        ("def f(c):\n    return c.quic._streams", "reads c.quic._streams"),
        ("def f(c):\n    return getattr(c.tls, '_peer_certificate', None)", "getattr of '_peer_certificate'"),
        (
            "from aioquic.quic.connection import QuicConnection\n"
            "class C(QuicConnection):\n"
            "    def _write_stream_limits(self, b, s, t):\n        pass",
            "C overrides _write_stream_limits",
        ),
        (
            "import aioquic.asyncio.protocol as p\n"
            "class A(p.QuicConnectionProtocol):\n    pass\n"
            "class B(A):\n"
            "    def send(self):\n        self._transport.sendto(b'')",
            "B uses self._transport",
        ),
    ],
)
def test_the_scan_finds_each_kind_of_private_access(code: str, found: str) -> None:
    uses = _scan(code)
    assert len(uses) == 1 and found in uses[0], uses


def test_the_scan_leaves_a_module_its_own_private_names() -> None:
    code = (
        "class Stream:\n"
        "    def __init__(self):\n        self._streams = {}\n        self._closing = False\n"
        "    def close(self):\n        self._closing = True\n"
    )
    assert _scan(code) == []


# ------------------------------------------------------------------ the start-up check


def test_the_installed_aioquic_has_everything_the_engine_relies_on() -> None:
    check_aioquic()


def test_a_missing_hook_fails_the_check_naming_the_aioquic_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(QuicConnection, "_write_stream_limits")
    with pytest.raises(QuicEngineError) as raised:
        check_aioquic()
    message = str(raised.value)
    assert f"aioquic {aioquic_version()}" in message
    assert "QuicConnection._write_stream_limits" in message
    assert aioquic_version()[0].isdigit()


def test_a_listener_that_keeps_its_socket_elsewhere_fails_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    def connection_made(self: QuicServer, transport: object) -> None:
        self.__dict__["_socket"] = transport

    monkeypatch.setattr(QuicServer, "connection_made", connection_made)
    with pytest.raises(QuicEngineError, match=r"QuicServer\._transport"):
        check_aioquic()
