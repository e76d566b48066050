"""Whether this copy of Pinewood runs its hot path compiled (see ``setup.py``).

A compiled module is a C extension beside its source, imported in its place.
If the source is edited after the extension was built, the extension still
wins: :func:`stale_extensions` names such modules, so that the tests can refuse
to run old code that looks new.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path

PROBE = "router.wire.frames"
"""A module that every compiled build compiles."""


def is_compiled(module: str = PROBE) -> bool:
    """Whether ``module`` is imported from a compiled extension."""
    spec = importlib.util.find_spec(module)
    return spec is not None and isinstance(spec.loader, importlib.machinery.ExtensionFileLoader)


def stale_extensions(root: Path) -> list[str]:
    """Compiled extensions under ``root`` older than the source beside them."""
    stale = []
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        for extension in root.rglob(f"*{suffix}"):
            source = extension.with_name(extension.name[: -len(suffix)] + ".py")
            if source.exists() and source.stat().st_mtime > extension.stat().st_mtime:
                stale.append(str(source.relative_to(root)))
    return sorted(stale)
