"""What an engine module relies on beyond its QUIC library's public API, each
thing named with a probe that shows it is there, and which of them are missing.

Both engine checks (:func:`router.quic.aioquic_hooks.check_aioquic`,
:func:`router.quic.qh3_engine.check_qh3`) are built from these; each names its
library's release and what is missing in its own words.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

Probe = Callable[[], bool]
"""Whether one thing an engine module relies on is there in the installed library."""

F = TypeVar("F", bound=Callable[..., Any])


def present(probe: Probe) -> bool:
    try:
        return probe()
    except Exception:  # a probe that cannot even run means the thing is gone
        return False


def missing(requirements: Iterable[tuple[str, Probe]]) -> list[str]:
    """The names, in order, of the requirements whose probe does not find them."""
    return [name for name, probe in requirements if not present(probe)]


def has_callable(owner: object, name: str) -> Probe:
    return lambda: callable(getattr(owner, name, None))


def keeps_transport(server_class: type[asyncio.DatagramProtocol]) -> Probe:
    """Whether a listener of ``server_class`` keeps its socket's transport as
    ``_transport``.  Such a listener needs a running loop to be made;
    ``connection_made`` alone is what stores the transport, and a bare instance
    is enough to see where."""

    def probe() -> bool:
        server = object.__new__(server_class)
        marker = object()
        server_class.connection_made(server, marker)  # type: ignore[arg-type]
        return server.__dict__.get("_transport") is marker

    return probe


def set_in_init(init: Callable[..., None], name: str) -> Probe:
    """Whether the source of ``init`` (a class's ``__init__``) names ``name``:
    an attribute it sets that has no other way to be seen."""
    return lambda: name in inspect.getsource(init)


class Requirements:
    """What one module relies on, gathered from its own code: each function or
    method that reaches past the library's public API is decorated with
    :meth:`relies_on`, so that nothing it reaches goes unchecked."""

    def __init__(self) -> None:
        self._probes: dict[str, Probe] = {}

    def relies_on(self, name: str, probe: Probe) -> Callable[[F], F]:
        """A decorator: what it decorates relies on ``name``, which ``probe`` finds."""

        def note(reaching: F) -> F:
            self._probes.setdefault(name, probe)
            return reaching

        return note

    def names(self) -> tuple[str, ...]:
        return tuple(self._probes)

    def missing(self) -> list[str]:
        return missing(self._probes.items())
