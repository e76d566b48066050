"""A handler's answer that is not JSON: bytes with their own content type and headers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Body:
    """What the server sends as it is: ``data`` as ``content_type``, with ``headers`` added."""

    content_type: str
    data: bytes
    headers: tuple[tuple[str, str], ...] = ()
