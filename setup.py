"""Optional native build: with ``PINEWOOD_COMPILE=1`` the sans-I/O hot path (the
wire codec, the routing modules that hold no state machine, the links' fair
queue) is compiled with mypyc into C extensions that sit beside the same
modules' sources and are imported in their place.  Without it, or where no C
compiler is, the package is pure Python and behaves the same.

    PINEWOOD_COMPILE=1 pip install --no-build-isolation .   # needs mypy, setuptools>=77, a C compiler

Everything else about the package is in pyproject.toml.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from setuptools import setup

HERE = Path(__file__).resolve().parent

NOT_COMPILED = {"__init__", "core", "state"}
"""mypyc compiles no class with several bases (the routing core is a mixin of
the ``*_state`` modules), and interpreted classes cannot subclass compiled ones,
so the state machine stays interpreted; what it calls per frame is compiled."""


def compiled_sources() -> list[str]:
    """The modules compiled, relative to the project (the order mypyc is given them)."""
    wire = sorted(HERE.glob("router/wire/*.py"))
    routing = [
        p
        for p in sorted(HERE.glob("router/routing/*.py"))
        if p.stem not in NOT_COMPILED and not p.stem.endswith("_state")
    ]
    return [
        str(p.relative_to(HERE))
        for p in (*wire, *routing, HERE / "router/links/queues.py")
        if p.stem != "__init__"
    ]


def ext_modules() -> list[Any]:
    if os.environ.get("PINEWOOD_COMPILE") != "1":
        return []
    from mypyc.build import mypycify  # noqa: PLC0415 - needed (and installed) for a compiled build only

    return list(mypycify(compiled_sources(), opt_level="3"))


if __name__ == "__main__":
    setup(ext_modules=ext_modules())
