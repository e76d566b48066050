"""The part of an asyncio transport that :class:`~router.links.peer.PeerLink`
uses, for carriers that are not sockets (a QUIC stream, a WebSocket)."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

HIGH_WATER_BYTES = 64 * 1024
"""Unsent bytes past which a link stops taking frames to write: little, so that
what waits, waits in the fair queues (see :mod:`router.links.queues`)."""


class WritePauser(Protocol):
    def pause_writing(self) -> None: ...

    def resume_writing(self) -> None: ...


class CarrierTransport(asyncio.Transport):
    """Write-buffer limits, pause/resume of writing by unsent bytes, and closing."""

    def __init__(self, link: WritePauser) -> None:
        super().__init__()
        self.link = link
        self.high_water = HIGH_WATER_BYTES
        self._writing_paused = False
        self._closing = False

    def peername(self) -> Any:
        return None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.peername() if name == "peername" else default

    def rtt_s(self) -> float | None:
        """The carrier's own estimate of the round trip, if it keeps one."""
        return None

    def stream_socket(self) -> Any:
        """The kernel TCP socket under the carrier, if it has one (a WebSocket
        does, a QUIC stream does not)."""
        return None

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is not None:
            self.high_water = high

    def note_unsent(self, unsent: int) -> None:
        """Pause the link's writing above the high-water mark, resume below a quarter of it."""
        if not self._writing_paused and unsent > self.high_water:
            self._writing_paused = True
            self.link.pause_writing()
        elif self._writing_paused and unsent <= self.high_water // 4:
            self._writing_paused = False
            self.link.resume_writing()

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        self.abort()
